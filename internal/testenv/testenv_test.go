package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Each case runs one helper in a subprocess (this test binary, running only
// that case) with a controlled environment, and checks how the subprocess's
// test ended: skipping or failing is the whole point of the helpers, and
// both end a test, so they cannot be observed in-process.

const childEnv = "MOAT_TESTENV_CHILD"

type outcome string

const (
	pass outcome = "PASS"
	skip outcome = "SKIP"
	fail outcome = "FAIL"
)

var cases = []struct {
	name string
	env  []string // besides a PATH holding only the fake tool "moat-fake-tool" (and a fake ip)
	call func(t *testing.T)
	want outcome
	msg  string // in the subprocess's output
}{
	{"tool missing skips", nil, func(t *testing.T) { RequireTools(t, "moat-fake-tool", "moat-no-such-tool", "iptables-nft") }, skip,
		"missing tools moat-no-such-tool, iptables-nft (apt-get install iptables; `make deps`"},
	{"tool missing fails when required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { RequireTools(t, "moat-no-such-tool") }, fail,
		"MOAT_REQUIRE_KERNEL=1 but missing tools moat-no-such-tool"},
	{"tool missing skips with another requirement set", []string{"MOAT_REQUIRE_CLI=1", "MOAT_REQUIRE_POSTGRES=1"}, func(t *testing.T) { RequireTools(t, "moat-no-such-tool") }, skip,
		"set MOAT_REQUIRE_KERNEL=1 to fail instead of skipping"},
	{"tool missing skips with the requirement 0", []string{"MOAT_REQUIRE_KERNEL=0"}, func(t *testing.T) { RequireTools(t, "moat-no-such-tool") }, skip, "missing tools"},
	{"tool present passes when required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { RequireTools(t, "moat-fake-tool") }, pass, ""},
	{"a typo in the variable fails", []string{"MOAT_REQUIRE_KERNEL=yes"}, func(t *testing.T) { RequireTools(t, "moat-no-such-tool") }, fail,
		`MOAT_REQUIRE_KERNEL="yes": want 1`},
	{"a typo fails even when nothing is missing", []string{"MOAT_REQUIRE_KERNEL=true"}, func(t *testing.T) { HaveTool(t, "moat-no-such-tool") }, fail, `MOAT_REQUIRE_KERNEL="true"`},
	{"optional tool missing goes on", nil, func(t *testing.T) {
		if HaveTool(t, "moat-no-such-tool") || !HaveTool(t, "moat-fake-tool") {
			t.Error("HaveTool is wrong")
		}
	}, pass, "moat-no-such-tool is not installed"},
	{"optional tool missing fails when required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { HaveTool(t, "ethtool") }, fail,
		"MOAT_REQUIRE_KERNEL=1 but ethtool is not installed (apt-get install ethtool"},
	{"no root skips", nil, func(t *testing.T) { geteuid = func() int { return 1000 }; RequireRoot(t) }, skip, "needs root"},
	{"no root fails when required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { geteuid = func() int { return 1000 }; RequireRoot(t) }, fail, "MOAT_REQUIRE_KERNEL=1 but the test needs root"},
	{"root passes when required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { geteuid = func() int { return 0 }; RequireRoot(t) }, pass, ""},
	{"no namespace fails when required", []string{"MOAT_REQUIRE_KERNEL=1", "FAKE_IP_FAIL=1"}, func(t *testing.T) { geteuid = func() int { return 0 }; RequireNetns(t) }, fail,
		"MOAT_REQUIRE_KERNEL=1 but cannot create a network namespace (ip netns add moat-probe-"},
	{"no namespace skips", []string{"FAKE_IP_FAIL=1"}, func(t *testing.T) { geteuid = func() int { return 0 }; RequireNetns(t) }, skip, "cannot create a network namespace"},
	{"namespace passes", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { geteuid = func() int { return 0 }; RequireNetns(t) }, pass, ""},
	{"a probe failing in the namespace fails when required", []string{"MOAT_REQUIRE_KERNEL=1", "FAKE_IP_EXEC_FAIL=1"}, func(t *testing.T) {
		geteuid = func() int { return 0 }
		RequireInNetns(t, []string{"iptables-legacy", "-t", "raw", "-S"})
	}, fail, "iptables-legacy -t raw -S does not work in a network namespace here"},
	{"no br_netfilter fails when required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { brNetfilter = "/nonexistent/moat"; RequireBrNetfilter(t) }, fail, "no br_netfilter"},
	{"no OVS fails when required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { RequireOVS(t) }, fail,
		"missing tools ovsdb-tool, ovsdb-server, ovs-vswitchd, ovs-vsctl (apt-get install openvswitch-switch"},
	{"no PostgreSQL fails when required", []string{"MOAT_REQUIRE_POSTGRES=1"}, func(t *testing.T) { Postgres.Missing(t, "no initdb") }, fail, "MOAT_REQUIRE_POSTGRES=1 but no initdb"},
	{"no PostgreSQL skips with only the kernel required", []string{"MOAT_REQUIRE_KERNEL=1"}, func(t *testing.T) { Postgres.Missing(t, "no initdb") }, skip,
		"no initdb (set MOAT_REQUIRE_POSTGRES=1 to fail instead of skipping)"},
	{"no CLI fails when required", []string{"MOAT_REQUIRE_CLI=1"}, func(t *testing.T) { CLI.Missing(t, "no openstack") }, fail, "MOAT_REQUIRE_CLI=1 but no openstack"},
	{"opt-in unset skips even when everything is required", []string{"MOAT_REQUIRE_KERNEL=1", "MOAT_REQUIRE_CLI=1", "MOAT_REQUIRE_POSTGRES=1"}, func(t *testing.T) {
		OptIn(t, "MOAT_TESTENV_OPTIN", "=1 to run it")
	}, skip, "opt-in, not run by default or by CI: set MOAT_TESTENV_OPTIN=1 to run it"},
	{"opt-in 0 skips", []string{"MOAT_TESTENV_OPTIN=0"}, func(t *testing.T) { OptIn(t, "MOAT_TESTENV_OPTIN", "=1") }, skip, "opt-in"},
	{"opt-in set runs", []string{"MOAT_TESTENV_OPTIN=1000,5000"}, func(t *testing.T) {
		if v := OptIn(t, "MOAT_TESTENV_OPTIN", "=1"); v != "1000,5000" {
			t.Errorf("OptIn = %q", v)
		}
	}, pass, ""},
}

// fakeIP stands in for iproute2's ip: it fails "netns add" with
// FAKE_IP_FAIL=1 and "netns exec" with FAKE_IP_EXEC_FAIL=1, and succeeds
// (doing nothing) otherwise.
const fakeIP = `#!/bin/sh
if [ "$1 $2" = "netns add" ] && [ -n "$FAKE_IP_FAIL" ]; then echo "mount --make-shared /run/netns failed: Operation not permitted" >&2; exit 1; fi
if [ "$1 $2" = "netns exec" ] && [ -n "$FAKE_IP_EXEC_FAIL" ]; then echo "can't initialize iptables table 'raw'" >&2; exit 3; fi
exit 0
`

func TestHelpers(t *testing.T) {
	if name := os.Getenv(childEnv); name != "" {
		for _, c := range cases {
			if c.name == name {
				c.call(t)
				return
			}
		}
		t.Fatalf("no case %q", name)
	}
	bin := t.TempDir()
	for name, body := range map[string]string{"moat-fake-tool": "#!/bin/sh\nexit 0\n", "ip": fakeIP} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The parent's own MOAT_* variables (make test sets them) must not
	// reach the subprocess.
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOAT_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "FAKE_IP") {
			base = append(base, kv)
		}
	}
	ended := regexp.MustCompile(`(?m)^--- (PASS|SKIP|FAIL): TestHelpers\b`)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelpers$", "-test.v", "-test.count=1")
			cmd.Env = append(append(base, childEnv+"="+c.name, "PATH="+bin), c.env...)
			out, err := cmd.CombinedOutput()
			m := ended.FindSubmatch(out)
			if m == nil {
				t.Fatalf("the subprocess did not run the test (%v):\n%s", err, out)
			}
			if got := outcome(m[1]); got != c.want {
				t.Errorf("test ended with %s, want %s:\n%s", got, c.want, out)
			}
			if (err != nil) != (c.want == fail) {
				t.Errorf("exit error %v, want one only for %s:\n%s", err, fail, out)
			}
			if !strings.Contains(string(out), c.msg) {
				t.Errorf("output does not say %q:\n%s", c.msg, out)
			}
		})
	}
}

func TestInstallHint(t *testing.T) {
	cases := []struct {
		tools []string
		want  string
	}{
		{[]string{"ip6tables-legacy-restore", "iptables-nft", "ipset"}, "apt-get install iptables ipset; `make deps` installs every package the tests use"},
		{[]string{"ovs-vsctl", "ovsdb-tool", "ping"}, "apt-get install openvswitch-switch iputils-ping; `make deps` installs every package the tests use"},
		{[]string{"gen_rules.py"}, "`make deps` installs every package the tests use"},
	}
	for _, c := range cases {
		if got := installHint(c.tools); got != c.want {
			t.Errorf("installHint(%v) = %q, want %q", c.tools, got, c.want)
		}
	}
}
