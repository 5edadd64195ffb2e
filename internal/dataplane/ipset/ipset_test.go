package ipset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/ipset/ipsettest"
	"github.com/moat-sg/moat/internal/dataplane/iptables/iptablestest"
	"github.com/moat-sg/moat/internal/firewall"
)

const (
	setA = "NIPv414c032e9-bc0a-4a7e-9f5b-" // 29 characters, as the compiler cuts them
	setB = "NIPv47f3e2d1c-5b4a-4c3d-8e2f-"
	set6 = "NIPv614c032e9-bc0a-4a7e-9f5b-"
)

func v4(name string, members ...string) firewall.IPSet {
	return firewall.IPSet{Name: name, Type: "hash:net", Family: "inet", Members: members}
}

func v6(name string, members ...string) firewall.IPSet {
	return firewall.IPSet{Name: name, Type: "hash:net", Family: "inet6", Members: members}
}

// hosts returns n sorted host addresses 10.0.x.y starting at from.
func hosts(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf("10.0.%d.%d", i/250, 1+i%250))
	}
	return out
}

// kernelState reads the owned sets through `ipset save` with the package's
// own parser, members sorted, for comparison with the desired sets.
func kernelState(t *testing.T, ex dataplane.Exec) map[string][]string {
	t.Helper()
	out, err := ex.Run(context.Background(), nil, "ipset", "save")
	if err != nil {
		t.Fatal(err)
	}
	sets, err := parseSave(string(out))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for n, s := range sets {
		m := slices.Clone(s.members)
		slices.Sort(m)
		got[n] = m
	}
	return got
}

func assertSets(t *testing.T, ex dataplane.Exec, want []firewall.IPSet, extra ...string) {
	t.Helper()
	got := kernelState(t, ex)
	for _, w := range want {
		m := slices.Clone(w.Members)
		slices.Sort(m)
		g, ok := got[w.Name]
		if !ok {
			t.Errorf("set %s missing", w.Name)
			continue
		}
		if !slices.Equal(g, m) {
			t.Errorf("set %s: members %q, want %q", w.Name, g, m)
		}
		delete(got, w.Name)
	}
	for _, e := range extra {
		delete(got, e)
	}
	for n := range got {
		t.Errorf("unexpected set %s", n)
	}
}

// step is one Apply of a scenario and what it must do.
type step struct {
	name  string
	sets  []firewall.IPSet
	stale []string
	// the restore input must contain these lines, and not those
	has, hasNot []string
	stats       Stats
}

// steps are the scenario both the fake and the kernel tests run.
func steps() []step {
	big := hosts(0, 300)
	return []step{
		{
			name: "create", sets: []firewall.IPSet{v4(setA, "10.10.0.0/24", "192.168.1.12"), v4(setB), v6(set6, "2001:db8::/64", "2001:db8::14")},
			has:   []string{"create " + setA + " hash:net family inet hashsize 1024 maxelem 65536", "add " + setA + " 10.10.0.0/24", "create " + set6 + " hash:net family inet6"},
			stats: Stats{Saved: true, Restores: 1, Created: 3, Adds: 4},
		},
		{name: "nothing changed", sets: []firewall.IPSet{v4(setA, "10.10.0.0/24", "192.168.1.12"), v4(setB), v6(set6, "2001:db8::/64", "2001:db8::14")}},
		{
			name: "few members: single add and del", sets: []firewall.IPSet{v4(setA, "10.10.0.0/24", "192.168.1.13"), v4(setB, "192.168.1.20"), v6(set6, "2001:db8::/64", "2001:db8::14")},
			has:    []string{"del " + setA + " 192.168.1.12", "add " + setA + " 192.168.1.13", "add " + setB + " 192.168.1.20"},
			hasNot: []string{"swap", "create"},
			stats:  Stats{Restores: 1, Patched: 2, Adds: 2, Dels: 1},
		},
		{
			name: "bulk: swap", sets: []firewall.IPSet{v4(setA, big...), v4(setB, "192.168.1.20"), v6(set6, "2001:db8::/64", "2001:db8::14")},
			has:    []string{"create " + setA + "-n hash:net family inet", "add " + setA + "-n 10.0.0.1", "swap " + setA + "-n " + setA, "destroy " + setA + "-n"},
			hasNot: []string{"add " + setA + " ", "del "},
			stats:  Stats{Restores: 1, Swapped: 1, Filled: 300},
		},
		{
			name: "exactly the threshold swaps", sets: []firewall.IPSet{v4(setA, big...), v4(setB, "192.168.1.20", "192.168.1.21", "192.168.1.22", "192.168.1.23", "192.168.1.24", "192.168.1.25"), v6(set6, "2001:db8::/64", "2001:db8::14")},
			has:   []string{"swap " + setB + "-n " + setB},
			stats: Stats{Restores: 1, Swapped: 1, Filled: 6},
		},
		{
			name: "set no longer wanted is stale", sets: []firewall.IPSet{v4(setA, big[:299]...), v6(set6, "2001:db8::/64", "2001:db8::14")},
			stale:  []string{setB},
			has:    []string{"del " + setA + " " + big[299]},
			hasNot: []string{"destroy"},
			stats:  Stats{Restores: 1, Patched: 1, Dels: 1},
		},
	}
}

func runSteps(t *testing.T, ex dataplane.Exec, foreign []string) {
	ctx := context.Background()
	rec := &iptablestest.Recorder{Exec: ex}
	s := NewSyncer(rec)
	for _, st := range steps() {
		rec.Reset()
		stale, err := s.Apply(ctx, st.sets)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !slices.Equal(stale, st.stale) {
			t.Errorf("%s: stale %q, want %q", st.name, stale, st.stale)
		}
		var in string
		restores := 0
		for _, c := range rec.Calls() {
			if slices.Contains(c.Args, "restore") {
				in += c.Stdin
				restores++
			}
		}
		lines := strings.Split(in, "\n")
		for _, h := range st.has {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, h) }) {
				t.Errorf("%s: restore input lacks %q:\n%s", st.name, h, in)
			}
		}
		for _, h := range st.hasNot {
			if strings.Contains(in, h) {
				t.Errorf("%s: restore input has %q:\n%s", st.name, h, in)
			}
		}
		got := s.LastStats()
		got.Bytes = 0
		if got != st.stats {
			t.Errorf("%s: stats %+v, want %+v", st.name, got, st.stats)
		}
		if restores != st.stats.Restores {
			t.Errorf("%s: %d restores", st.name, restores)
		}
		assertSets(t, ex, st.sets, append(slices.Clone(st.stale), foreign...)...)
		if d, err := s.Check(ctx, st.sets); err != nil || !slices.Equal(d, prefixed("unexpected set ", st.stale)) {
			t.Errorf("%s: Check = %q, %v", st.name, d, err)
		}
		if err := s.Destroy(ctx, stale); err != nil {
			t.Fatalf("%s: Destroy: %v", st.name, err)
		}
		assertSets(t, ex, st.sets, foreign...)
	}
}

func prefixed(p string, ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, p+s)
	}
	return out
}

func TestSyncerFake(t *testing.T) {
	k := ipsettest.New()
	ctx := context.Background()
	if _, err := k.Run(ctx, []byte("create foreign hash:ip family inet\nadd foreign 1.2.3.4\ncreate LIBVIRT-x hash:net\n"), "ipset", "restore"); err != nil {
		t.Fatal(err)
	}
	runSteps(t, k, []string{"foreign", "LIBVIRT-x"})
	sets := k.Sets()
	if f, ok := sets["foreign"]; !ok || !slices.Equal(f.Members, []string{"1.2.3.4"}) {
		t.Errorf("foreign set changed: %+v", f)
	}
}

func TestDriftAndRepair(t *testing.T) {
	k := ipsettest.New()
	ctx := context.Background()
	rec := &iptablestest.Recorder{Exec: k}
	s := NewSyncer(rec)
	want := []firewall.IPSet{v4(setA, hosts(0, 20)...), v4(setB, "10.9.9.9")}
	if _, err := s.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"del", setA, "10.0.0.5"}, {"add", setA, "10.7.7.7"}, {"flush", setB}} {
		if _, err := k.Run(ctx, nil, "ipset", cmd...); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.Check(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	wantDrift := []string{"set " + setA + ": 1 members missing, 1 unexpected", "set " + setB + ": 1 members missing, 0 unexpected"}
	if !slices.Equal(d, wantDrift) {
		t.Errorf("drift %q, want %q", d, wantDrift)
	}
	rec.Reset()
	if _, err := s.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	if st := s.LastStats(); st.Saved || st.Patched != 2 {
		t.Errorf("repair %+v, want two patched sets and no read", st)
	}
	assertSets(t, k, want)

	// A set destroyed behind the syncer's back: Check sees it, Apply
	// recreates it.
	if _, err := k.Run(ctx, nil, "ipset", "destroy", setB); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Check(ctx, want); !slices.Equal(d, []string{"missing set " + setB}) {
		t.Errorf("drift %q", d)
	}
	if _, err := s.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	assertSets(t, k, want)
}

func TestFailureRereads(t *testing.T) {
	k := ipsettest.New()
	ctx := context.Background()
	s := NewSyncer(k)
	want := []firewall.IPSet{v4(setA, hosts(0, 3)...)}
	if _, err := s.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	want2 := []firewall.IPSet{v4(setA, hosts(1, 3)...)}
	k.FailRestore = func(string) error { return errors.New("injected") }
	if _, err := s.Apply(ctx, want2); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Apply = %v", err)
	}
	k.FailRestore = nil
	if _, err := s.Apply(ctx, want2); err != nil {
		t.Fatal(err)
	}
	if !s.LastStats().Saved {
		t.Error("no re-read after a failure")
	}
	assertSets(t, k, want2)
}

func TestStaleViewConverges(t *testing.T) {
	// Someone adds the members moat is about to add, and removes a set moat
	// thinks exists: -exist lets the adds pass; the missing set makes the
	// restore fail, and the next Apply converges.
	k := ipsettest.New()
	ctx := context.Background()
	s := NewSyncer(k)
	if _, err := s.Apply(ctx, []firewall.IPSet{v4(setA, "10.0.0.1"), v4(setB, "10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	k.Run(ctx, nil, "ipset", "add", setA, "10.0.0.3")
	k.Run(ctx, nil, "ipset", "destroy", setB)
	want := []firewall.IPSet{v4(setA, "10.0.0.1", "10.0.0.3"), v4(setB, "10.0.0.2", "10.0.0.4")}
	if _, err := s.Apply(ctx, want); err == nil {
		t.Fatal("Apply on a stale view succeeded")
	}
	if _, err := s.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	assertSets(t, k, want)
}

func TestLeftoverTemporarySet(t *testing.T) {
	// A crash between create and swap left NAME-n (with other parameters);
	// the next bulk change replaces it, and a leftover without a bulk change
	// is returned as stale.
	k := ipsettest.New()
	ctx := context.Background()
	k.Run(ctx, []byte("create "+setA+" hash:net family inet\ncreate "+setA+"-n hash:net family inet maxelem 1024\nadd "+setA+"-n 10.1.1.1\ncreate "+setB+"-n hash:net family inet\n"), "ipset", "restore")
	s := NewSyncer(k)
	want := []firewall.IPSet{v4(setA, hosts(0, 10)...)}
	stale, err := s.Apply(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stale, []string{setB + "-n"}) {
		t.Errorf("stale %q", stale)
	}
	if err := s.Destroy(ctx, stale); err != nil {
		t.Fatal(err)
	}
	assertSets(t, k, want)
}

func TestDestroyInUse(t *testing.T) {
	k := ipsettest.New()
	ctx := context.Background()
	s := NewSyncer(k)
	if _, err := s.Apply(ctx, []firewall.IPSet{v4(setA), v4(setB), v6(set6)}); err != nil {
		t.Fatal(err)
	}
	k.InUse = func(n string) bool { return n == setA }
	err := s.Destroy(ctx, []string{setA, setB, set6})
	if err == nil || !strings.Contains(err.Error(), setA) || strings.Contains(err.Error(), setB) {
		t.Errorf("Destroy = %v, want an error about %s only", err, setA)
	}
	if got := k.Sets(); len(got) != 1 || got[setA].Type == "" {
		t.Errorf("sets left %v, want only %s", got, setA)
	}
	if err := s.Destroy(ctx, []string{"foreign"}); err == nil {
		t.Error("Destroy of a foreign set succeeded")
	}
}

func TestValidate(t *testing.T) {
	for name, sets := range map[string][]firewall.IPSet{
		"foreign name": {v4("docker-set")},
		"too long":     {v4("NIPv4" + strings.Repeat("a", 25))},
		"family":       {{Name: setA, Type: "hash:net", Family: "ipv4"}},
		"duplicate":    {v4(setA), v4(setA)},
		"temp clash":   {v4("NIPv4abc"), v4("NIPv4abc-n")},
	} {
		if _, err := validate(sets); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := validate([]firewall.IPSet{v4(setA), v6(set6)}); err != nil {
		t.Error(err)
	}
}

func TestFamilyMismatch(t *testing.T) {
	k := ipsettest.New()
	ctx := context.Background()
	k.Run(ctx, nil, "ipset", "create", setA, "hash:net", "family", "inet6")
	s := NewSyncer(k)
	if _, err := s.Apply(ctx, []firewall.IPSet{v4(setA, "10.0.0.1")}); err == nil || !strings.Contains(err.Error(), "family inet6") {
		t.Errorf("Apply = %v", err)
	}
}

func TestParseSave(t *testing.T) {
	in := `create foreign hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1
add foreign 1.2.3.4
create NIPv4a hash:net family inet hashsize 2048 maxelem 131072 bucketsize 12 initval 0x40f92181
add NIPv4a 10.0.0.0/8
add NIPv4a 192.168.1.12 nomatch
create NIPv6b hash:net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x2
add NIPv6b 2001:db8::/64

`
	got, err := parseSave(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["NIPv4a"].maxelem != 131072 || got["NIPv4a"].family != "inet" ||
		!slices.Equal(got["NIPv4a"].members, []string{"10.0.0.0/8", "192.168.1.12"}) ||
		got["NIPv6b"].family != "inet6" || !slices.Equal(got["NIPv6b"].members, []string{"2001:db8::/64"}) {
		t.Errorf("parse: %+v %+v", got["NIPv4a"], got["NIPv6b"])
	}
	for _, bad := range []string{"create x\n", "add NIPv4a\n", "destroy x\n"} {
		if _, err := parseSave(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMaxElem(t *testing.T) {
	for n, want := range map[int]int{0: 65536, 49152: 65536, 49153: 131072, 200000: 524288} {
		if got := maxElem(n); got != want {
			t.Errorf("maxElem(%d) = %d, want %d", n, got, want)
		}
	}
}
