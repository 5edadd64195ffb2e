package ovsd_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/ovsd"
	"github.com/moat-sg/moat/internal/pidfile"
	"github.com/moat-sg/moat/internal/testenv"
)

// Start (through netnstest.OVS) brings up an OVS that answers on its own socket, with ovs-vswitchd
// in the given namespace; Stop ends both daemons, and again is fine.
func TestStartStop(t *testing.T) {
	ns := netnstest.New(t, "moat-ovsd")
	o := netnstest.OVS(t, ns.Name)
	dir := o.Dir
	out, err := exec.Command("ovs-vsctl", "--db="+o.DB(), "--timeout=10", "get", "Open_vSwitch", ".", "external_ids:moat-private").Output()
	if err != nil || strings.TrimSpace(string(out)) != `"true"` {
		t.Fatalf("ovs-vsctl get: %q, %v", out, err)
	}
	pids := map[string]string{}
	for _, d := range ovsd.Daemons {
		b, err := os.ReadFile(filepath.Join(dir, d+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		pids[d] = strings.TrimSpace(string(b))
	}
	// ovs-vswitchd runs in the namespace: its userspace datapath opens the
	// ports there.
	inNS := netnstest.Run(t, dataplane.Host{}, "", "ip", "netns", "identify", pids["ovs-vswitchd"])
	if strings.TrimSpace(inNS) != ns.Name {
		t.Errorf("ovs-vswitchd is in namespace %q, want %s", inNS, ns.Name)
	}
	for round := 0; round < 2; round++ {
		if err := ovsd.Stop(dir); err != nil {
			t.Fatalf("Stop (round %d): %v", round, err)
		}
	}
	for d, pid := range pids {
		if n, err := strconv.Atoi(pid); err != nil || pidfile.Matches(n, dir) {
			t.Errorf("%s (pid %s) still runs after Stop", d, pid)
		}
	}
}

func TestStartErrors(t *testing.T) {
	testenv.RequireOVS(t)
	long := "/tmp/" + strings.Repeat("x", 100)
	if _, err := ovsd.Start(context.Background(), long, ""); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Start with a long directory: %v", err)
	}
}
