// Package testenv is the one place where a test decides what to do when the
// machine lacks something it needs: root, a tool, a kernel feature, the
// openstack CLI, PostgreSQL.
//
// By default such a test skips and says how to get what is missing, so that
// `go test ./...` works on a laptop. With the matching MOAT_REQUIRE_*
// variable set to 1 it fails instead: `make test` (and so CI) sets all of
// them, and a skipped test is never counted as a passing one there.
//
//	MOAT_REQUIRE_KERNEL=1    root, network namespaces, kernel features, the
//	                         tools kernel tests drive (iptables, ipset, OVS…)
//	MOAT_REQUIRE_CLI=1       the Debian openstack CLI
//	MOAT_REQUIRE_POSTGRES=1  a private PostgreSQL cluster
//
// Opt-in tests (benchmarks, the live run against the real Neutron driver)
// are different: they skip unless their own variable asks for them, whatever
// MOAT_REQUIRE_* says, and OptIn says so in the skip message.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// A Requirement is a kind of prerequisite and the variable that makes it
// mandatory.
type Requirement struct {
	// Env is the variable: "1" turns a missing prerequisite into a failure.
	Env string
}

var (
	// Kernel covers root, network namespaces, kernel features and the
	// tools the kernel tests drive.
	Kernel = Requirement{Env: "MOAT_REQUIRE_KERNEL"}
	// CLI covers the Debian openstack CLI.
	CLI = Requirement{Env: "MOAT_REQUIRE_CLI"}
	// Postgres covers the private PostgreSQL cluster of internal/store/pgtest.
	Postgres = Requirement{Env: "MOAT_REQUIRE_POSTGRES"}
)

// Required reports whether r's variable is 1. Any value but "", "0" and "1"
// fails t: a typo such as MOAT_REQUIRE_KERNEL=yes must not quietly let
// tests skip.
func (r Requirement) Required(t testing.TB) bool {
	t.Helper()
	switch v := os.Getenv(r.Env); v {
	case "", "0":
		return false
	case "1":
		return true
	default:
		t.Fatalf("%s=%q: want 1 (missing prerequisites fail the test) or 0/unset (they skip it)", r.Env, v)
		return false
	}
}

// Missing ends the test because a prerequisite of kind r is missing: it
// fails the test when r is required and skips it otherwise. The message
// says what is missing and how to get it.
func (r Requirement) Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if r.Required(t) {
		t.Fatalf("%s=1 but %s", r.Env, msg)
	}
	t.Skipf("%s (set %s=1 to fail instead of skipping)", msg, r.Env)
}

// geteuid and brNetfilter are variables so that this package's own tests
// can pretend to run without root or br_netfilter.
var (
	geteuid     = os.Geteuid
	brNetfilter = "/proc/sys/net/bridge"
)

// RequireRoot needs the test to run as root (network namespaces, raw
// sockets, a private OVS). CI runs the suite as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if geteuid() != 0 {
		Kernel.Missing(t, "the test needs root (network namespaces); run the tests as root, as CI does")
	}
}

// packages maps the tools the tests drive to the Debian packages that ship
// them (all of them are in the Makefile's TEST_PACKAGES).
var packages = map[string]string{
	"ip":              "iproute2",
	"ping":            "iputils-ping",
	"ethtool":         "ethtool",
	"tcpdump":         "tcpdump",
	"ipset":           "ipset",
	"iperf3":          "iperf3",
	"systemd-analyze": "systemd",
	"conntrack":       "conntrack",
	"ovsdb-tool":      "openvswitch-switch",
	"ovsdb-server":    "openvswitch-switch",
	"ovs-vswitchd":    "openvswitch-switch",
	"ovs-vsctl":       "openvswitch-switch",
}

func packageOf(tool string) string {
	if p, ok := packages[tool]; ok {
		return p
	}
	if strings.HasPrefix(tool, "iptables") || strings.HasPrefix(tool, "ip6tables") {
		return "iptables"
	}
	return ""
}

// installHint says how to install the tools.
func installHint(tools []string) string {
	var pkgs []string
	for _, tool := range tools {
		if p := packageOf(tool); p != "" && !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return "`make deps` installs every package the tests use"
	}
	return "apt-get install " + strings.Join(pkgs, " ") + "; `make deps` installs every package the tests use"
}

// RequireTools needs the tools on PATH; a missing one is reported with the
// others that are missing and the Debian packages to install.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		Kernel.Missing(t, "missing tools %s (%s)", strings.Join(missing, ", "), installHint(missing))
	}
}

// HaveTool reports whether an optional tool is on PATH: a test can do
// without it (and logs so), except when MOAT_REQUIRE_KERNEL=1, where a
// missing tool of TEST_PACKAGES fails the test like any other.
func HaveTool(t testing.TB, tool string) bool {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return true
	}
	if Kernel.Required(t) {
		t.Fatalf("%s=1 but %s is not installed (%s)", Kernel.Env, tool, installHint([]string{tool}))
	}
	t.Logf("%s is not installed (%s); going on without it", tool, installHint([]string{tool}))
	return false
}

// OVSTools are the Open vSwitch programs the tests run a private OVS with.
var OVSTools = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"}

// RequireOVS needs Open vSwitch's userspace (a private ovsdb-server and
// ovs-vswitchd; the tests use the userspace datapath, not the kernel
// module).
func RequireOVS(t testing.TB) {
	t.Helper()
	RequireTools(t, OVSTools...)
}

// RequireBrNetfilter needs br_netfilter, without which iptables does not
// see bridged frames (the hybrid wiring's qbr bridges).
func RequireBrNetfilter(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(brNetfilter); err != nil {
		Kernel.Missing(t, "no br_netfilter (%s: %v): iptables cannot see bridged frames; load it on the host (modprobe br_netfilter)", brNetfilter, err)
	}
}

var (
	probeMu sync.Mutex
	probes  = map[string]error{}
)

// RequireNetns needs root, iproute2 and a kernel that lets this process
// create network namespaces (probed once per test process, with a scratch
// namespace of a random name that is deleted at once).
func RequireNetns(t testing.TB) {
	t.Helper()
	RequireInNetns(t)
}

// RequireInNetns is RequireNetns, and each command must also succeed
// inside a fresh scratch namespace: for kernel features a namespace may lack
// (legacy iptables tables, ipset). Results are cached per process.
func RequireInNetns(t testing.TB, cmds ...[]string) {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip")
	var key strings.Builder
	for _, c := range cmds {
		key.WriteString(strings.Join(c, "\x00") + "\n")
	}
	probeMu.Lock()
	err, done := probes[key.String()]
	if !done {
		err = probe(cmds)
		probes[key.String()] = err
	}
	probeMu.Unlock()
	if err != nil {
		Kernel.Missing(t, "%v", err)
	}
}

func probe(cmds [][]string) error {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	ns := "moat-probe-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("cannot create a network namespace (ip netns add %s: %v: %s)", ns, err, strings.TrimSpace(string(out)))
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	for _, c := range cmds {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, c...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s does not work in a network namespace here: %v: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// OptIn runs the rest of the test only when the variable env is set (to
// anything but "" or "0"), and returns its value. Opt-in tests are long or need
// what CI does not have (benchmarks, the real Neutron driver): no
// MOAT_REQUIRE_* variable turns their skip into a failure. how follows the
// variable's name in the message: "=1000,5000 to run the benchmark".
func OptIn(t testing.TB, env, how string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" || v == "0" {
		t.Skipf("opt-in, not run by default or by CI: set %s%s", env, how)
	}
	return v
}
