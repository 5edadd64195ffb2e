package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/moat-sg/moat/internal/agent"
	"os"
	"regexp"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/scratchns"
	"github.com/moat-sg/moat/internal/testenv"
)

// owners holds one claim per lab these tests built (scratchns.Claims:
// the test process's pid and executable), written before the lab is
// built: TestMain removes the labs whose owner is gone (a test binary
// killed by a timeout), and never those of another run that is still
// going.
var owners = scratchns.Claims{Dir: "/run/moat-e2e"}

// labPrefix starts every lab name of this package ("e" + 5 hex digits:
// namespace names stay short).
const labPrefix = "e"

var labNameRE = regexp.MustCompile(`^e[0-9a-f]{5}$`)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		sweep()
	}
	code := m.Run()
	moatbin.Remove()
	os.Exit(code)
}

// sweep tears down the labs left by test processes that are gone.
func sweep() {
	orphans, err := owners.Orphans(labNameRE.MatchString)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return
	}
	for _, name := range orphans {
		fmt.Fprintf(os.Stderr, "e2e: removing lab %s left by a test run that is gone\n", name)
		if err := lab.Down(context.Background(), name, ""); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: lab down %s: %v\n", name, err)
			continue
		}
		_ = owners.Release(name)
	}
}

// newLabName returns an unused lab name and records this process as its
// owner.
func newLabName(t *testing.T) string {
	t.Helper()
	for {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		name := labPrefix + hex.EncodeToString(b)[:5]
		ok, err := owners.Claim(name)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		if _, err := os.Stat(lab.StateDir(name)); err == nil {
			_ = owners.Release(name) // someone else's lab of that name
			continue
		}
		return name
	}
}

// Tools the tests drive (besides the lab's own: ip, OVS, ethtool).
var tools = []string{"ip", "ping", "ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ipset", "conntrack"}

// needRoot skips the test (fails it with MOAT_REQUIRE_KERNEL=1) unless it
// can build labs here.
func needRoot(t *testing.T) {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, tools...)
	testenv.RequireBrNetfilter(t)
}

// backends are the iptables backends every scenario runs on.
func backends() []string {
	var out []string
	for _, b := range iptables.Backends() {
		out = append(out, string(b))
	}
	return out
}

// needBackend skips (fails with MOAT_REQUIRE_KERNEL=1) when the backend's
// binaries are missing.
func needBackend(t *testing.T, backend string) {
	t.Helper()
	testenv.RequireTools(t, agent.Backend(backend).Binaries()...)
}
