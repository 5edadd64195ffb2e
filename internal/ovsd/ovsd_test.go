package ovsd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/pidfile"
	"github.com/moat-sg/moat/internal/testenv"
)

// Start brings up an OVS that answers on its own socket, with ovs-vswitchd
// in the given namespace; Stop ends both daemons, and again is fine.
func TestStartStop(t *testing.T) {
	testenv.RequireOVS(t)
	ns := netnstest.New(t, "moat-ovsd")
	dir, err := os.MkdirTemp("", "mo") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := Start(ctx, dir, ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Stop() })
	out, err := exec.Command("ovs-vsctl", "--db="+o.DB(), "--timeout=10", "get", "Open_vSwitch", ".", "external_ids:moat-private").Output()
	if err != nil || strings.TrimSpace(string(out)) != `"true"` {
		t.Fatalf("ovs-vsctl get: %q, %v", out, err)
	}
	pids := map[string]string{}
	for _, d := range Daemons {
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
		if err := Stop(dir); err != nil {
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
	if _, err := Start(context.Background(), long, ""); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Start with a long directory: %v", err)
	}
}
