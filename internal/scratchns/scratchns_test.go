package scratchns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/testenv"
)

// writeClaim writes a claim as a process pid running exe would have.
func writeClaim(t *testing.T, dir, name string, pid int, exe string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("%d %s\n", pid, exe)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestClaims(t *testing.T) {
	c := Claims{Dir: filepath.Join(t.TempDir(), "claims")}
	ok, err := c.Claim("e12345")
	if err != nil || !ok {
		t.Fatalf("first Claim = %v, %v", ok, err)
	}
	if ok, err := c.Claim("e12345"); err != nil || ok {
		t.Fatalf("second Claim of the same name = %v, %v; want false", ok, err)
	}
	self, _ := os.Readlink("/proc/self/exe")
	b, _ := os.ReadFile(filepath.Join(c.Dir, "e12345"))
	if want := fmt.Sprintf("%d %s\n", os.Getpid(), self); string(b) != want {
		t.Errorf("claim holds %q, want %q", b, want)
	}
	writeClaim(t, c.Dir, "e00dead", os.Getpid(), "/nonexistent/exe") // a recycled pid
	writeClaim(t, c.Dir, "e00gone", 0, self)                         // no such process
	if err := os.WriteFile(filepath.Join(c.Dir, "e0empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writeClaim(t, c.Dir, "other", 0, "/x") // not a name valid accepts
	got, err := c.Orphans(func(n string) bool { return strings.HasPrefix(n, "e") })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"e00dead", "e00gone", "e0empty"}; !slices.Equal(got, want) {
		t.Errorf("Orphans = %v, want %v", got, want)
	}
	if err := c.Release("e00dead"); err != nil {
		t.Fatal(err)
	}
	if err := c.Release("e00dead"); err != nil {
		t.Errorf("second Release: %v", err)
	}
	if got, _ := c.Orphans(func(n string) bool { return strings.HasPrefix(n, "e") }); slices.Contains(got, "e00dead") {
		t.Errorf("released claim still listed: %v", got)
	}
	entries, _ := os.ReadDir(c.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".claim-") {
			t.Errorf("temporary claim file left: %s", e.Name())
		}
	}
	if got, err := (Claims{Dir: filepath.Join(c.Dir, "missing")}).Orphans(func(string) bool { return true }); err != nil || got != nil {
		t.Errorf("Orphans of a missing directory = %v, %v", got, err)
	}
}

// An executable replaced on disk while its process runs (a rebuilt moat)
// still owns its claims; a stranger behind a recycled pid does not.
func TestOwnerAlive(t *testing.T) {
	self, _ := os.Readlink("/proc/self/exe")
	pid := fmt.Sprint(os.Getpid())
	if !ownerAlive(pid, self) {
		t.Errorf("ownerAlive(self) = false")
	}
	if ownerAlive(pid, "/nonexistent/exe") || ownerAlive("x", self) || ownerAlive("0", self) {
		t.Errorf("ownerAlive accepts a stranger")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "owner")
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if !ownerAlive(fmt.Sprint(cmd.Process.Pid), bin) {
		t.Error("a process whose executable was removed is not its claims' owner")
	}
}

func TestNewAndDelete(t *testing.T) {
	testenv.RequireNetns(t)
	ns, err := New("moat-snt")
	if err != nil {
		t.Fatal(err)
	}
	if !nameRE.MatchString(ns.Name) || !strings.HasPrefix(ns.Name, "moat-snt-") || !dataplane.NetnsExists(ns.Name) {
		t.Fatalf("namespace %q: bad name or missing", ns.Name)
	}
	if want := []string{"XTABLES_LOCKFILE=" + lockFile(ns.Name)}; !slices.Equal(ns.Env, want) {
		t.Errorf("Env = %v, want %v", ns.Env, want)
	}
	out, err := ns.Run(context.Background(), nil, "sh", "-c", `echo "$XTABLES_LOCKFILE"; readlink /proc/self/ns/net`)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	lines := strings.Fields(string(out))
	if len(lines) != 2 || lines[0] != lockFile(ns.Name) || lines[1] == self {
		t.Errorf("in the namespace: %q (this process's namespace %s)", out, self)
	}
	if got, _ := claims.Orphans(nameRE.MatchString); slices.Contains(got, ns.Name) {
		t.Errorf("a live namespace is listed as an orphan")
	}
	if err := ns.Delete(); err != nil {
		t.Fatal(err)
	}
	if dataplane.NetnsExists(ns.Name) {
		t.Error("namespace left after Delete")
	}
	if _, err := os.Stat(filepath.Join(claimDir, ns.Name)); !os.IsNotExist(err) {
		t.Errorf("claim left after Delete: %v", err)
	}
	if err := ns.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := New("Bad_Prefix"); err == nil {
		t.Error("New accepted a prefix with upper case and underscores")
	}
}

// Sweep removes a namespace whose owner is gone, with its claim and lock
// file, and leaves alone the namespaces of live owners and those it did
// not make.
func TestSweep(t *testing.T) {
	testenv.RequireNetns(t)
	ctx := context.Background()
	live, err := New("moat-snt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Delete() })
	orphan := "moat-snt-0dead0" + fmt.Sprintf("%02x", os.Getpid()%256)
	writeClaim(t, claimDir, orphan, os.Getpid(), "/nonexistent/killed.test")
	if err := dataplane.AddNetns(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockFile(orphan), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remove(ctx, orphan) })
	// Unclaimed, with a name New could have made: not this package's.
	stranger := "moat-snt-5a5a" + fmt.Sprintf("%04x", os.Getpid()%65536)
	if err := dataplane.AddNetns(ctx, stranger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dataplane.DeleteNetns(ctx, stranger) })

	if err := Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if dataplane.NetnsExists(orphan) {
		t.Error("the orphan namespace survived Sweep")
	}
	for _, f := range []string{filepath.Join(claimDir, orphan), lockFile(orphan)} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s survived Sweep: %v", f, err)
		}
	}
	if !dataplane.NetnsExists(live.Name) {
		t.Error("Sweep deleted a live owner's namespace")
	}
	if !dataplane.NetnsExists(stranger) {
		t.Error("Sweep deleted a namespace it did not make")
	}
}
