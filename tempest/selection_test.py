#!/usr/bin/python3
"""Tests of selection.py's verdict on subunit streams built here (make tempest runs them first)."""
import contextlib
import datetime
import io
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import selection  # noqa: E402

CORE_IDS = ["tempest.api.network.test_security_groups.SecGroupTest.test_%03d[id-%03d,smoke]" % (i, i)
            for i in range(100)]
RELATED_IDS = (["neutron_tempest_plugin.api.test_timestamp.TestTimeStampWithSecurityGroup.test_%02d" % i
                for i in range(30)]
               + ["neutron_tempest_plugin.api.test_address_groups.AddressGroupTest.test_%02d" % i
                  for i in range(13)])
LOGGING_IDS = ["neutron_tempest_plugin.api.admin.test_logging.LoggingTestJSON.test_%s" % t
               for t in ("log_lifecycle", "list_supported_logging_types", "log_deleted_with_corresponding_security_group")]
LOGGING_CLASS = "setUpClass (neutron_tempest_plugin.api.admin.test_logging.LoggingTestJSON)"
GOOD = {t: ("success", "") for t in CORE_IDS + RELATED_IDS + LOGGING_IDS}


def write_stream(path, results):
    import subunit
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    with open(path, "wb") as f:
        out = subunit.StreamResultToBytes(f)
        for tid, (status, reason) in sorted(results.items()):
            out.status(test_id=tid, test_status="inprogress", timestamp=t0)
            kw = {}
            if reason:
                kw = dict(file_name="reason", file_bytes=reason.encode(), mime_type="text/plain; charset=utf8")
            out.status(test_id=tid, test_status=status, timestamp=t0 + datetime.timedelta(seconds=1), **kw)


class VerdictTest(unittest.TestCase):
    def verdict(self, name, results):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.subunit")
            write_stream(path, results)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = selection.check(name, path)
        return rc, out.getvalue()

    def test_selections_hold_what_they_claim(self):
        for tid in CORE_IDS:
            self.assertTrue(re.match(selection.REGEX["core"], tid), tid)
        for tid in RELATED_IDS:
            self.assertFalse(re.match(selection.REGEX["core"], tid), tid)
            self.assertTrue(re.match(selection.REGEX["extended"], tid), tid)
        for tid in LOGGING_IDS:
            self.assertTrue(re.match(selection.REGEX["extended"], tid), tid)
        negative = "neutron_tempest_plugin.api.admin.test_logging_negative.LoggingNegativeTestJSON.test_x"
        self.assertFalse(re.match(selection.REGEX["extended"], negative))

    def test_pass(self):
        rc, out = self.verdict("extended", GOOD)
        self.assertEqual(rc, 0, out)
        self.assertIn("core: 100 passed, 0 failed, 0 skipped of 100", out)
        self.assertIn("extended: 146 passed, 0 failed, 0 skipped of 146", out)
        rc, out = self.verdict("core", {t: ("success", "") for t in CORE_IDS})
        self.assertEqual(rc, 0, out)

    def test_fail(self):
        cases = {
            "a core test failed": {**GOOD, CORE_IDS[7]: ("fail", "Traceback: boom")},
            "a related test failed": {**GOOD, RELATED_IDS[3]: ("fail", "")},
            "a core test skipped": {**GOOD, CORE_IDS[0]: ("skip", "no extension")},
            "a test missing": {t: r for t, r in GOOD.items() if t != RELATED_IDS[0]},
            "a logging test skipped": {**GOOD, LOGGING_IDS[0]: ("skip", "no admin")},
            "the logging class skipped": {**{t: r for t, r in GOOD.items() if t not in LOGGING_IDS},
                                          LOGGING_CLASS: ("skip", "logging extension not enabled.")},
            "a class failed to tear down": {**GOOD, "tearDownClass (tempest.api.network.test_security_groups.SecGroupTest)": ("fail", "")},
            "a class failed to set up": {**{t: r for t, r in GOOD.items() if t not in CORE_IDS[:5]},
                                         "setUpClass (tempest.api.network.test_security_groups.SecGroupTest)": ("fail", "")},
        }
        for name, results in sorted(cases.items()):
            with self.subTest(name):
                rc, out = self.verdict("extended", results)
                self.assertEqual(rc, 1, out)
                self.assertIn("FAIL:", out)
                self.assertIn("per-test results:", out)
        with self.subTest("core alone, a class failed to tear down"):
            rc, out = self.verdict("core", {**{t: ("success", "") for t in CORE_IDS},
                                            "tearDownClass (x.Y)": ("fail", "")})
            self.assertEqual(rc, 1, out)

    def test_failure_prints_the_traceback(self):
        rc, out = self.verdict("extended", {**GOOD, CORE_IDS[7]: ("fail", "Traceback: boom")})
        self.assertEqual(rc, 1)
        self.assertIn("FAILED", out)
        self.assertIn("Traceback: boom", out)


if __name__ == "__main__":
    unittest.main()
