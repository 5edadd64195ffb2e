// Package netnstest is the network-namespace helper of every kernel test:
// New makes a scratch namespace (internal/scratchns: a random name, a
// private xtables lock, leftovers of killed runs swept) that is deleted
// when the test ends, after internal/testenv has decided whether the test
// may run here (skip, or fail with MOAT_REQUIRE_KERNEL=1). Run and Handle
// drive it; OVS starts a private Open vSwitch inside it.
package netnstest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/ovsd"
	"github.com/moat-sg/moat/internal/scratchns"
	"github.com/moat-sg/moat/internal/testenv"
)

// New creates a scratch namespace named prefix-<random> and returns the
// Exec that runs commands in it (with its own XTABLES_LOCKFILE). It is
// deleted, with whatever still runs inside, when t ends. Without root or
// namespaces the test skips, or fails with MOAT_REQUIRE_KERNEL=1.
func New(t testing.TB, prefix string) dataplane.Netns {
	t.Helper()
	testenv.RequireNetns(t)
	ns, err := scratchns.New(prefix)
	if err != nil {
		t.Fatalf("scratch namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Error(err)
		}
	})
	return ns.Netns
}

// Run runs a command through ex (a namespace, usually) with stdin ("" for
// none) and returns its output; a failure fails t.
func Run(t testing.TB, ex dataplane.Exec, stdin, name string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := ex.Run(context.Background(), in, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Handle returns a netlink handle inside the named namespace, closed when
// t ends.
func Handle(t testing.TB, name string) *netlink.Handle {
	t.Helper()
	fd, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open network namespace %s: %v", name, err)
	}
	t.Cleanup(func() { fd.Close() })
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		t.Fatalf("netlink in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	return h
}

// OVS starts a private Open vSwitch (internal/ovsd) whose ovs-vswitchd
// runs in the named namespace, with its state in a fresh directory; both
// are gone when t ends. Without Open vSwitch the test skips, or fails with
// MOAT_REQUIRE_KERNEL=1.
func OVS(t testing.TB, ns string) *ovsd.OVS {
	t.Helper()
	testenv.RequireOVS(t)
	dir, err := os.MkdirTemp("", "mo") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := ovsd.Start(ctx, dir, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Stop(); err != nil {
			t.Error(err)
		}
	})
	return o
}
