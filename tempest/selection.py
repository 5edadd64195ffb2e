#!/usr/bin/python3
"""The tempest selections moat must pass, and the check of a run's results.

  selection.py regex NAME
      Print the regex of selection NAME (core or extended) for `stestr run`.
  selection.py check NAME RESULTS.subunit
      Read a run's subunit v2 stream and exit 0 only if it is exactly what
      NAME requires (see REQUIRED); print the summary, and on failure every
      test's result and the tracebacks of those that did not pass.
  selection.py report RESULTS.subunit
      Print every test's result; exit 1 if any failed (for a free regex).

core: tempest's and neutron-tempest-plugin's security-group API tests.
extended: core plus the security-group tests around ports, port security,
timestamps, tags, revisions, quotas, address groups and logging: 146
tests. moat passes core 100/100 and extended 146/146, nothing skipped.
Real Neutron 21 with its iptables drivers passes core 100/100 and skips
the logging class (3 tests): it has no logging driver for iptables, so
the logging extension is not listed (its 13 address-group tests were not
run against it).
"""
import re
import sys

CORE = (r"tempest\.api\.network\.test_security_groups(_negative)?\."
        r"|neutron_tempest_plugin\.api\.(admin\.)?test_security_groups(_negative)?\.")
RELATED = (
    r"tempest\.api\.network\.test_ports\.Ports(IpV6)?TestJSON\.test_("
    r"create_port_with_no_securitygroups|update_port_with_(two_)?security_group)"
    r"|neutron_tempest_plugin\.api\.("
    r"test_extension_driver_port_security"
    r"|admin\.test_extension_driver_port_security_admin"
    r"|test_timestamp\.TestTimeStampWithSecurityGroup"
    r"|admin\.test_tag\.Tag(Filter)?SecGroup"
    r"|test_revisions\.TestRevisions\.test_update_(sg_|port_sg_|port_security)"
    r"|test_ports_negative\.PortsNegativeTestJSON\.test_add_port_with_nonexist_security_groups_id"
    r"|test_ports\.PortsTestJSON\.test_create_update_port_security"
    r"|test_address_groups\."
    r"|admin\.test_quotas_negative\.QuotasAdminNegativeTestJSON\.test_create_security_group"
    r"|admin\.test_logging\.LoggingTestJSON\.)")
REGEX = {
    "core": "^(%s)" % CORE,
    "extended": "^(%s|%s)" % (CORE, RELATED),
}

# Tests allowed (and required) to be skipped, with the reason each must
# give: none since moat has the logging extension.
SKIP_REASONS = {}

# name -> (number of tests, ids allowed, and required, to be skipped)
REQUIRED = {
    "core": (100, []),
    "extended": (146, []),
}


def read_results(path):
    """Return {test id: (status, seconds, traceback)}; ids lose their [attrs]."""
    import subunit
    import testtools

    results = {}

    def on_test(t):
        if t["status"] in ("exists", "inprogress", None):
            return
        tid = re.sub(r"\[.*\]$", "", t["id"])
        start, stop = t["timestamps"]
        secs = (stop - start).total_seconds() if start and stop else 0.0
        tb = ""
        for name, content in sorted(t["details"].items()):
            if name == "traceback" or name.startswith("reason"):
                tb += "".join(x.decode("utf-8", "replace") for x in content.iter_bytes())
        results[tid] = (t["status"], secs, tb)

    with open(path, "rb") as f:
        case = subunit.ByteStreamToStreamResult(f, non_subunit_name="stdout")
        sink = testtools.StreamToDict(on_test)
        sink.startTestRun()
        case.run(sink)
        sink.stopTestRun()
    return results


WORD = {"success": "ok", "skip": "SKIPPED", "fail": "FAILED"}


def counts(results):
    p = sum(1 for s, _, _ in results.values() if s == "success")
    s = sum(1 for s, _, _ in results.values() if s == "skip")
    return p, len(results) - p - s, s


def print_tests(results):
    for tid in sorted(results):
        status, secs, _ = results[tid]
        print("  %-7s %6.1fs  %s" % (WORD.get(status, status.upper()), secs, tid))


def print_failures(results):
    for tid in sorted(results):
        status, _, tb = results[tid]
        if status != "success":
            print("----- %s: %s\n%s" % (WORD.get(status, status), tid, tb.rstrip()))


def verdict(part, results, want_n, want_skips):
    """Print part's summary; return what is wrong with it (empty: nothing)."""
    p, f, s = counts(results)
    skipped = sorted(t for t, (st, _, _) in results.items() if st == "skip")
    print("%s: %d passed, %d failed, %d skipped of %d (required: %d passed, skipped only %s)"
          % (part, p, f, s, len(results), want_n - len(want_skips), want_skips or "nothing"))
    problems = []
    if len(results) != want_n:
        problems.append("%s has %d results, not %d" % (part, len(results), want_n))
    if f:
        problems.append("%s: %d failed" % (part, f))
    if skipped != sorted(want_skips):
        problems.append("%s skipped %s" % (part, skipped or "nothing"))
    for t in skipped:
        reason = results[t][2].strip()
        if t in SKIP_REASONS and reason != SKIP_REASONS[t]:
            problems.append("%s skipped for %r, not %r" % (t, reason, SKIP_REASONS[t]))
    return problems


def check(name, path):
    results = read_results(path)
    problems = []
    if name != "core":
        # the core tests must pass whole within a larger selection too
        core = {t: r for t, r in results.items() if re.match(REGEX["core"], t)}
        problems += verdict("core", core, *REQUIRED["core"])
    # every result counts, those of setUpClass and tearDownClass too
    problems += verdict(name, results, *REQUIRED[name])
    if not problems:
        return 0
    print("FAIL: " + "; ".join(problems))
    print("per-test results:")
    print_tests(results)
    print_failures(results)
    return 1


def report(path):
    results = read_results(path)
    print_tests(results)
    print_failures(results)
    p, f, s = counts(results)
    print("%d passed, %d failed, %d skipped" % (p, f, s))
    return 1 if f or not results else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "regex" and argv[2] in REGEX:
        print(REGEX[argv[2]])
        return 0
    if len(argv) == 4 and argv[1] == "check" and argv[2] in REQUIRED:
        return check(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "report":
        return report(argv[2])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
