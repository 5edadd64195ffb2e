package iptables

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables/iptablestest"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
)

// bench is a compiled workload that tests change step by step, as an agent
// would: one Compiler, zones fed back.
type bench struct {
	*workload.Bench
	c  *firewall.Compiler
	rs *firewall.Ruleset
}

func newBench(t testing.TB, ports int) *bench {
	t.Helper()
	b := &bench{Bench: workload.NewBench(ports), c: firewall.NewCompiler()}
	b.compile(t)
	return b
}

func (b *bench) compile(t testing.TB) *firewall.Ruleset {
	t.Helper()
	rs, err := b.c.Compile(b.State)
	if err != nil {
		t.Fatal(err)
	}
	b.State.Zones = rs.ZoneAssignments
	b.rs = rs
	return rs
}

// fakeHost is a syncer on a fake kernel that records the commands.
type fakeHost struct {
	k   *iptablestest.Kernel
	rec *iptablestest.Recorder
	s   *Syncer
}

func newFakeHost(backend Backend) *fakeHost {
	k := iptablestest.New()
	rec := &iptablestest.Recorder{Exec: k}
	return &fakeHost{k: k, rec: rec, s: NewSyncer(rec, backend)}
}

// run runs an iptables command on the fake, as another tool would.
func (h *fakeHost) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := h.k.Run(context.Background(), nil, name, args...); err != nil {
		t.Fatal(err)
	}
}

func (h *fakeHost) restore(t *testing.T, name, input string) {
	t.Helper()
	if _, err := h.k.Run(context.Background(), []byte(input), name, "--noflush"); err != nil {
		t.Fatal(err)
	}
}

// wantSave is what iptables-save prints for a table of a fresh host after
// applying rs: rs's tables plus the canary, in legacy order.
func wantSave(t *testing.T, tb firewall.Table) string {
	t.Helper()
	if tb.Name == "filter" {
		tb.Chains = append(slices.Clone(tb.Chains), firewall.Chain{Name: CanaryChain, Rules: canaryRules})
		slices.SortFunc(tb.Chains, func(a, b firewall.Chain) int { return strings.Compare(a.Name, b.Name) })
	}
	var b strings.Builder
	if err := firewall.WriteSave(&b, &tb); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// assertKernel checks that the fake holds exactly rs (and the canary), with
// the foreign rules given per family/table prepended to nothing: only for
// hosts without foreign rules.
func assertKernel(t *testing.T, k *iptablestest.Kernel, rs *firewall.Ruleset) {
	t.Helper()
	for _, f := range families {
		ts := rsTables(rs, f)
		for _, tb := range []firewall.Table{ts.Raw, ts.Filter} {
			if got, want := k.Save(f.String(), tb.Name), wantSave(t, tb); got != want {
				t.Errorf("%s %s:\n%s", f, tb.Name, lineDiff(want, got))
			}
		}
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "-%s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+%s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)\n--- want\n" + want + "--- got\n" + got
	}
	return b.String()
}

// chainCount is the number of owned chains rs makes, canaries included.
func chainCount(rs *firewall.Ruleset) int {
	n := 0
	for _, f := range families {
		ts := rsTables(rs, f)
		n += len(ts.Filter.Chains) + 1 + len(ts.Raw.Chains)
	}
	return n
}

func mustApply(t *testing.T, s *Syncer, rs *firewall.Ruleset) Stats {
	t.Helper()
	st, err := s.Apply(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustCheck(t *testing.T, s *Syncer, rs *firewall.Ruleset) []string {
	t.Helper()
	d, err := s.Check(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestApplyFreshAndNoop(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			h := newFakeHost(backend)
			b := newBench(t, 20)
			st := mustApply(t, h.s, b.rs)
			if !st.Saved || st.Saves != 4 || st.Restores != 2 {
				t.Errorf("first apply: %+v, want 4 saves and 2 restores", st)
			}
			if want := chainCount(b.rs); st.ChainsCreated != want {
				t.Errorf("created %d chains, want %d", st.ChainsCreated, want)
			}
			for _, c := range h.rec.Calls() {
				if !strings.Contains(c.Name, string(backend)[len("iptables"):]) {
					t.Errorf("%s ran %s", backend, c)
				}
				if strings.HasSuffix(c.Name, "-restore") && !slices.Contains(c.Args, "--noflush") {
					t.Errorf("restore without --noflush: %s", c)
				}
				if strings.HasSuffix(c.Name, "-restore") && (backend == Legacy) != slices.Contains(c.Args, "-w") {
					t.Errorf("%s: -w is for legacy only: %s", backend, c)
				}
			}
			assertKernel(t, h.k, b.rs)
			if d := mustCheck(t, h.s, b.rs); len(d) > 0 {
				t.Errorf("drift after apply: %q", d)
			}

			h.rec.Reset()
			st = mustApply(t, h.s, b.rs)
			if st != (Stats{}) || len(h.rec.Calls()) != 0 {
				t.Errorf("apply without change: %+v, calls %v", st, h.rec.Calls())
			}
			// The same again from a fresh syncer: reads, writes nothing.
			h.rec.Reset()
			s2 := NewSyncer(h.rec, backend)
			st = mustApply(t, s2, b.rs)
			if st.Restores != 0 || st.Saves != 4 {
				t.Errorf("fresh syncer on a synced kernel: %+v", st)
			}
		})
	}
}

func TestApplyOneRuleChange(t *testing.T) {
	h := newFakeHost(NFT)
	b := newBench(t, 40)
	mustApply(t, h.s, b.rs)

	b.AddRule(b.Apps[3], 4242)
	rs := b.compile(t)
	h.rec.Reset()
	st := mustApply(t, h.s, rs)
	// app3 is on ports 3, 13, 23, 33: their IPv4 ingress chains get the
	// rule, nothing else changes; no read, one restore (IPv4), one -I line
	// per chain.
	if st.Saved || st.Restores != 1 || st.ChainsPatched != 4 || st.RulesWritten != 4 || st.ChainsWritten() != 4 || st.ChainsDeleted != 0 || st.BuiltinRules != 0 {
		t.Errorf("one-rule change: %+v", st)
	}
	calls := h.rec.Calls()
	if len(calls) != 1 || calls[0].Name != "iptables-nft-restore" {
		t.Fatalf("calls %v", calls)
	}
	in := calls[0].Stdin
	var want []string
	for _, i := range []int{3, 13, 23, 33} {
		want = append(want, "neutron-openvswi-i"+b.State.Ports[i].ID[:10])
	}
	assertOnlyInserts(t, in, want, "-p 6 -m tcp --dport 4242 -j RETURN")
	if !strings.Contains(in, "--dport 4242") {
		t.Errorf("new rule not written:\n%s", in)
	}
	assertKernel(t, h.k, rs)
}

// assertOnlyInserts checks that a restore input inserts rule into each of
// chains and does nothing else.
func assertOnlyInserts(t *testing.T, in string, chains []string, rule string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(in), "\n") {
		if l == "*filter" || l == "COMMIT" {
			continue
		}
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 || f[0] != "-I" || f[3] != rule {
			t.Errorf("unexpected line %q", l)
			continue
		}
		got = append(got, f[1])
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(chains))
	if !slices.Equal(got, want) {
		t.Errorf("inserted into %q, want %q", got, want)
	}
}

func TestApplyPortsComeAndGo(t *testing.T) {
	h := newFakeHost(Legacy)
	b := newBench(t, 12)
	mustApply(t, h.s, b.rs)

	// Remove two ports: their chains go, the dispatch chains are rewritten.
	gone := b.State.Ports[4:6]
	b.State.Ports = slices.Delete(slices.Clone(b.State.Ports), 4, 6)
	before := chainCount(b.rs)
	rs := b.compile(t)
	st := mustApply(t, h.s, rs)
	if want := before - chainCount(rs); st.ChainsDeleted != want || want < 2*2*2 {
		t.Errorf("deleted %d chains, want %d (2 ports' i, o (and s) chains in 2 families): %+v", st.ChainsDeleted, want, st)
	}
	assertKernel(t, h.k, rs)
	for _, p := range gone {
		if strings.Contains(h.k.Save("ipv4", "filter"), p.ID[:10]) || strings.Contains(h.k.Save("ipv4", "raw"), p.ID) {
			t.Errorf("port %s still in the kernel", p.ID)
		}
	}

	// And back.
	b.State.Ports = append(b.State.Ports, gone...)
	rs = b.compile(t)
	mustApply(t, h.s, rs)
	assertKernel(t, h.k, rs)
	if d := mustCheck(t, h.s, rs); len(d) > 0 {
		t.Errorf("drift: %q", d)
	}
}

// foreign sets up rules of other tools, as libvirt and docker leave them.
func foreign(t *testing.T, h *fakeHost, variant string) map[string]string {
	t.Helper()
	h.restore(t, "iptables-"+variant+"-restore", `*filter
:LIBVIRT_FWI - [0:0]
:DOCKER-USER - [0:0]
-A LIBVIRT_FWI -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -j DOCKER-USER
-A FORWARD -j LIBVIRT_FWI
-A INPUT -i virbr0 -p udp -m udp --dport 53 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -i docker0 -j RETURN
COMMIT
*raw
-A PREROUTING -i virbr0 -j ACCEPT
COMMIT
`)
	h.restore(t, "ip6tables-"+variant+"-restore", `*filter
:LIBVIRT_FWI - [0:0]
-A LIBVIRT_FWI -o virbr0 -j REJECT
-A FORWARD -j LIBVIRT_FWI
COMMIT
`)
	return foreignLines(h.k)
}

// foreignLines is every line of the fake's tables that is not moat's.
func foreignLines(k *iptablestest.Kernel) map[string]string {
	out := map[string]string{}
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, tb := range []string{"filter", "raw", "nat"} {
			var keep []string
			empty := true // only empty built-in chains, as a read creates them
			for _, l := range strings.Split(k.Save(fam, tb), "\n") {
				if !strings.Contains(l, "neutron-") && !strings.Contains(l, CanaryChain) {
					keep = append(keep, l)
					empty = empty && !strings.HasPrefix(l, "-A ") && !strings.HasSuffix(l, " - [0:0]")
				}
			}
			if !empty {
				out[fam+" "+tb] = strings.Join(keep, "\n")
			}
		}
	}
	return out
}

func TestForeignRulesSurvive(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			h := newFakeHost(backend)
			before := foreign(t, h, backend.variant())
			b := newBench(t, 10)
			mustApply(t, h.s, b.rs)
			if got := foreignLines(h.k); !mapsEqual(got, before) {
				t.Errorf("apply changed foreign rules:\n got %q\nwant %q", got, before)
			}
			// moat's jumps come first in the built-in chains.
			filter := h.k.Save("ipv4", "filter")
			if i, j := strings.Index(filter, "-A FORWARD -j neutron-openvswi-FORWARD"), strings.Index(filter, "-A FORWARD -j DOCKER-USER"); i < 0 || j < i {
				t.Errorf("moat's jumps not on top:\n%s", filter)
			}
			if d := mustCheck(t, h.s, b.rs); len(d) > 0 {
				t.Errorf("drift: %q", d)
			}

			b.AddRule(b.Common, 5000)
			mustApply(t, h.s, b.compile(t))
			if got := foreignLines(h.k); !mapsEqual(got, before) {
				t.Errorf("incremental apply changed foreign rules:\n got %q\nwant %q", got, before)
			}

			// Docker restarts and puts its jump on top again: drift, repaired
			// without moving docker's rule.
			h.run(t, "iptables-"+backend.variant(), "-D", "FORWARD", "-j", "DOCKER-USER")
			h.run(t, "iptables-"+backend.variant(), "-I", "FORWARD", "-j", "DOCKER-USER")
			d := mustCheck(t, h.s, b.rs)
			if len(d) != 1 || !strings.Contains(d[0], "ipv4 filter: built-in chain FORWARD") {
				t.Errorf("drift %q, want FORWARD's jumps", d)
			}
			st := mustApply(t, h.s, b.rs)
			if st.Saved || st.BuiltinRules != 4 || st.ChainsWritten() != 0 {
				t.Errorf("repair: %+v, want 2 -D and 2 -I", st)
			}
			if d := mustCheck(t, h.s, b.rs); len(d) > 0 {
				t.Errorf("drift after repair: %q", d)
			}
			if got := foreignLines(h.k); !mapsEqual(got, before) {
				t.Errorf("repair changed foreign rules:\n got %q\nwant %q", got, before)
			}

			if err := h.s.RemoveAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := foreignLines(h.k); !mapsEqual(got, before) {
				t.Errorf("RemoveAll changed foreign rules:\n got %q\nwant %q", got, before)
			}
			for _, fam := range []string{"ipv4", "ipv6"} {
				for _, tb := range []string{"filter", "raw"} {
					if s := h.k.Save(fam, tb); strings.Contains(s, "neutron-") || strings.Contains(s, CanaryChain) {
						t.Errorf("RemoveAll left moat's rules in %s %s:\n%s", fam, tb, s)
					}
				}
			}
			// RemoveAll on a clean host is a no-op.
			h.rec.Reset()
			if err := h.s.RemoveAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := len(h.rec.Matching("-restore")); n != 0 {
				t.Errorf("RemoveAll on a clean host ran %d restores", n)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestRestoreFailureRereads(t *testing.T) {
	h := newFakeHost(NFT)
	b := newBench(t, 10)
	mustApply(t, h.s, b.rs)
	before4, before6 := h.k.Save("ipv4", "filter"), h.k.Save("ipv6", "filter")

	b.AddRule(b.Apps[1], 7000)
	rs := b.compile(t)
	boom := errors.New("injected failure")
	h.k.FailRestore = func(string, string) error { return boom }
	if _, err := h.s.Apply(context.Background(), rs); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Apply = %v, want the injected failure", err)
	}
	if h.k.Save("ipv4", "filter") != before4 || h.k.Save("ipv6", "filter") != before6 {
		t.Error("a failed restore changed the kernel")
	}
	h.k.FailRestore = nil
	h.rec.Reset()
	st := mustApply(t, h.s, rs)
	if !st.Saved || st.Saves != 2 {
		t.Errorf("apply after failure: %+v, want a read of ipv4 only", st)
	}
	assertKernel(t, h.k, rs)
}

func TestFailedTableIsNamed(t *testing.T) {
	h := newFakeHost(Legacy)
	b := newBench(t, 4)
	mustApply(t, h.s, b.rs)
	// A new port (raw and filter change) whose rules name a missing ipset
	// make the filter transaction fail; raw, after it, is not attempted.
	b.State.Ports = append(b.State.Ports, firewall.Port{
		ID: "99999999-0000-4000-8000-000000000000", MAC: "fa:16:3e:99:99:99",
		FixedIPs: []string{"10.9.9.9"}, SecurityGroups: []string{b.Common}, DeviceOwner: "compute:nova",
	})
	rs := b.compile(t)
	h.k.SetExists = func(name string) bool { return false }
	_, err := h.s.Apply(context.Background(), rs)
	if err == nil || !strings.Contains(err.Error(), "filter table failed, nothing committed") {
		t.Fatalf("Apply = %v", err)
	}
	if strings.Contains(h.k.Save("ipv4", "filter"), "neutron-openvswi-i99999999") || strings.Contains(h.k.Save("ipv4", "raw"), "99999999") {
		t.Error("half-applied")
	}
	h.k.SetExists = nil
	st := mustApply(t, h.s, rs)
	if !st.Saved {
		t.Errorf("no re-read after failure: %+v", st)
	}
	assertKernel(t, h.k, rs)
}

func TestDriftDetectedAndRepaired(t *testing.T) {
	b := newBench(t, 6)
	port := "neutron-openvswi-i" + b.State.Ports[2].ID[:10]
	for _, tc := range []struct {
		name       string
		cmd        []string
		drift      string
		canaryGone bool
	}{
		{"port chain flushed", []string{"iptables-nft", "-F", port}, "ipv4 filter: chain " + port + " differs (0 rules", false},
		{"builtin jump deleted", []string{"ip6tables-nft", "-D", "FORWARD", "-j", "neutron-openvswi-FORWARD"}, "ipv6 filter: built-in chain FORWARD", false},
		{"canary deleted", []string{"iptables-nft", "-F", CanaryChain}, "ipv4 filter: chain moat-canary differs", true},
		{"raw jump deleted", []string{"iptables-nft", "-t", "raw", "-D", "PREROUTING", "-j", "neutron-openvswi-PREROUTING"}, "ipv4 raw: built-in chain PREROUTING", false},
		{"rule appended to a port chain", []string{"iptables-nft", "-A", port, "-j", "ACCEPT"}, "ipv4 filter: chain " + port + " differs", false},
		{"foreign chain named like moat's", []string{"iptables-nft", "-N", "neutron-openvswi-extra"}, "ipv4 filter: unexpected chain neutron-openvswi-extra", false},
		{"everything flushed", []string{"iptables-nft", "-F"}, "ipv4 filter: built-in chain", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(NFT)
			ctx := context.Background()
			mustApply(t, h.s, b.rs)
			if ok, err := h.s.CanaryPresent(ctx); err != nil || !ok {
				t.Fatalf("CanaryPresent = %v, %v after apply", ok, err)
			}
			h.run(t, tc.cmd[0], tc.cmd[1:]...)
			// The canary notices what it is there for (a flush of every
			// chain, its own removal) and nothing else.
			ok, err := h.s.CanaryPresent(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok != !tc.canaryGone {
				t.Errorf("CanaryPresent = %v", ok)
			}
			d := mustCheck(t, h.s, b.rs)
			if !slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, tc.drift) }) {
				t.Errorf("drift %q, want %q", d, tc.drift)
			}
			h.rec.Reset()
			st := mustApply(t, h.s, b.rs)
			if st.Saved {
				t.Errorf("Apply after Check read the kernel again: %+v", st)
			}
			if d := mustCheck(t, h.s, b.rs); len(d) > 0 {
				t.Errorf("drift after repair: %q", d)
			}
			assertKernel(t, h.k, b.rs)
		})
	}
}

func TestStaleViewFailsThenConverges(t *testing.T) {
	// Someone deletes a jump moat would delete too; the syncer, not knowing,
	// writes a -D that fails; the next Apply reads and converges.
	h := newFakeHost(NFT)
	b := newBench(t, 3)
	mustApply(t, h.s, b.rs)
	h.run(t, "iptables-nft", "-D", "INPUT", "-j", "neutron-openvswi-INPUT")
	empty := &firewall.Ruleset{}
	if _, err := h.s.Apply(context.Background(), empty); err == nil {
		t.Fatal("Apply with a stale view succeeded")
	}
	st := mustApply(t, h.s, empty)
	if !st.Saved {
		t.Errorf("%+v", st)
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		if s := h.k.Save(fam, "filter"); strings.Contains(s, "neutron-") {
			t.Errorf("%s filter:\n%s", fam, s)
		}
		if s := h.k.Save(fam, "filter"); !strings.Contains(s, "-A "+CanaryChain) {
			t.Errorf("%s filter lacks the canary:\n%s", fam, s)
		}
	}
}

func TestInstalledZones(t *testing.T) {
	h := newFakeHost(Legacy)
	b := newBench(t, 5)
	// Port 1 stateless: its raw rules say --notrack.
	stateless := firewall.SecurityGroup{ID: "5e5e5e5e-0000-4000-8000-000000000000", Stateless: true,
		Rules: []firewall.Rule{{Direction: firewall.Ingress, Ethertype: firewall.IPv4}}}
	b.State.SecurityGroups = append(b.State.SecurityGroups, stateless)
	b.State.Ports[1].SecurityGroups = []string{stateless.ID}
	rs := b.compile(t)
	mustApply(t, h.s, rs)
	got, err := h.s.InstalledZones(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, pz := range rs.PortZones {
		if pz.PortID != b.State.Ports[1].ID {
			want[pz.PortID] = pz.Zone
		}
	}
	if len(want) != 4 || !maps2Equal(got, want) {
		t.Errorf("zones %v, want %v", got, want)
	}
}

func maps2Equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestTakeOverNeutronHost(t *testing.T) {
	// A host Neutron ran: its chains for a port that is gone, its jumps in a
	// different order, a counters-style save (nft order). moat converges.
	h := newFakeHost(NFT)
	h.restore(t, "iptables-nft-restore", `*filter
:neutron-filter-top - [0:0]
:neutron-openvswi-FORWARD - [0:0]
:neutron-openvswi-ideadbeef-0 - [0:0]
:neutron-openvswi-sg-chain - [0:0]
:neutron-openvswi-sg-fallback - [0:0]
-A FORWARD -j neutron-openvswi-FORWARD
-A FORWARD -j neutron-filter-top
-A neutron-openvswi-FORWARD -m physdev --physdev-out tapdeadbeef-00 --physdev-is-bridged -j neutron-openvswi-sg-chain
-A neutron-openvswi-sg-chain -m physdev --physdev-out tapdeadbeef-00 --physdev-is-bridged -j neutron-openvswi-ideadbeef-0
-A neutron-openvswi-ideadbeef-0 -j neutron-openvswi-sg-fallback
-A neutron-openvswi-sg-fallback -j DROP
COMMIT
`)
	h.k.LegacyWarning = true
	b := newBench(t, 3)
	st := mustApply(t, h.s, b.rs)
	if st.ChainsDeleted != 1 {
		t.Errorf("%+v", st)
	}
	assertKernel(t, h.k, b.rs)
}

func TestApplyRejectsForeignChains(t *testing.T) {
	h := newFakeHost(NFT)
	for name, rs := range map[string]*firewall.Ruleset{
		"foreign chain": {IPv4: firewall.Tables{Filter: firewall.Table{Name: "filter", Chains: []firewall.Chain{{Name: "LIBVIRT_FWI"}}}}},
		"foreign jump": {IPv4: firewall.Tables{Filter: firewall.Table{Name: "filter",
			Builtins: []firewall.Chain{{Name: "FORWARD", Rules: []string{"-j ACCEPT"}}}}}},
		"wrong table": {IPv6: firewall.Tables{Raw: firewall.Table{Name: "filter"}}},
		"duplicate": {IPv4: firewall.Tables{Raw: firewall.Table{Name: "raw",
			Chains: []firewall.Chain{{Name: "neutron-openvswi-x"}, {Name: "neutron-openvswi-x"}}}}},
	} {
		if _, err := h.s.Apply(context.Background(), rs); err == nil {
			t.Errorf("%s: Apply succeeded", name)
		}
	}
	if n := len(h.rec.Calls()); n != 0 {
		t.Errorf("rejected rulesets ran %d commands", n)
	}
}

func TestContextCancelled(t *testing.T) {
	h := newFakeHost(NFT)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.s.Apply(ctx, newBench(t, 1).rs); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply = %v", err)
	}
}

// failingExec fails every restore with iptables-restore's message for a line.
type failingExec struct {
	k    *iptablestest.Kernel
	line int
}

func (f *failingExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if strings.HasSuffix(name, "-restore") {
		return nil, &dataplane.CommandError{Cmd: name, Err: &iptablestest.ExitError{Code: 1},
			Stderr: fmt.Sprintf("iptables-restore: line %d failed\n", f.line)}
	}
	return f.k.Run(ctx, stdin, name, args...)
}

func TestRestoreErrorNamesTable(t *testing.T) {
	b := newBench(t, 2)
	// The fresh input is "*filter", its lines, "COMMIT", then "*raw".
	want, _ := desiredTables(&b.rs.IPv4)
	p, _ := planTable("filter", &tableState{}, want[0])
	in, n := p.appendTo(nil)
	if c := strings.Count(string(in), "\n"); c != n {
		t.Fatalf("appendTo counted %d lines, wrote %d", n, c)
	}
	rawLine := n + 2
	for _, tc := range []struct {
		line int
		want string
	}{
		{2, "restore filter table failed, nothing committed"},
		{rawLine, "restore raw table failed (filter committed before it)"},
	} {
		f := &failingExec{k: iptablestest.New(), line: tc.line}
		_, err := NewSyncer(f, NFT).Apply(context.Background(), b.rs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("line %d: %v, want %q", tc.line, err, tc.want)
		}
	}
}

func TestGenerationSkipsReads(t *testing.T) {
	h := newFakeHost(NFT)
	h.s.SetGeneration(h.k.Generation)
	ctx := context.Background()
	b := newBench(t, 5)
	mustApply(t, h.s, b.rs)

	// Nothing written since the Apply: Check and the canary cost nothing.
	h.rec.Reset()
	if d := mustCheck(t, h.s, b.rs); len(d) > 0 {
		t.Errorf("drift %q", d)
	}
	if ok, err := h.s.CanaryPresent(ctx); !ok || err != nil {
		t.Errorf("CanaryPresent = %v, %v", ok, err)
	}
	// A changed ruleset is still compared, against the view.
	b.AddRule(b.Common, 6000)
	rs := b.compile(t)
	if d := mustCheck(t, h.s, rs); len(d) != len(b.State.Ports) {
		t.Errorf("drift %q, want every port's ingress chain", d)
	}
	if calls := h.rec.Calls(); len(calls) != 0 {
		t.Errorf("Check and CanaryPresent ran %v", calls)
	}
	mustApply(t, h.s, rs)

	// Another tool writes (even an unrelated table): the next Check reads.
	h.run(t, "iptables-nft", "-t", "nat", "-N", "DOCKER")
	h.rec.Reset()
	if d := mustCheck(t, h.s, rs); len(d) > 0 {
		t.Errorf("drift %q", d)
	}
	if n := len(h.rec.Matching("-save")); n != 4 {
		t.Errorf("Check after a foreign write ran %d saves, want 4", n)
	}
	// ... and once: the read is verified.
	h.rec.Reset()
	mustCheck(t, h.s, rs)
	if n := len(h.rec.Calls()); n != 0 {
		t.Errorf("second Check ran %d commands", n)
	}

	// A foreign write between the syncer's view and its own Apply: the
	// Apply cannot vouch for the result, the next Check reads.
	port := "neutron-openvswi-i" + b.State.Ports[1].ID[:10]
	h.run(t, "iptables-nft", "-A", port, "-j", "ACCEPT")
	b.AddRule(b.Common, 6001)
	rs = b.compile(t)
	mustApply(t, h.s, rs)
	h.rec.Reset()
	d := mustCheck(t, h.s, rs)
	if len(h.rec.Matching("-save")) != 4 || !slices.ContainsFunc(d, func(s string) bool { return strings.Contains(s, port) }) {
		t.Errorf("drift %q after %v", d, h.rec.Calls())
	}
	mustApply(t, h.s, rs)
	if d := mustCheck(t, h.s, rs); len(d) > 0 {
		t.Errorf("drift after repair %q", d)
	}

	// A flushed chain makes the position of an insert wrong: the Apply
	// fails, the next one reads and converges.
	h.run(t, "iptables-nft", "-F", port)
	b.AddRule(b.Common, 6002)
	rs = b.compile(t)
	if _, err := h.s.Apply(ctx, rs); err == nil || !strings.Contains(err.Error(), "Index of insertion too big") {
		t.Errorf("Apply on a flushed chain = %v", err)
	}
	if st := mustApply(t, h.s, rs); !st.Saved {
		t.Errorf("%+v", st)
	}
	if d := mustCheck(t, h.s, rs); len(d) > 0 {
		t.Errorf("drift %q", d)
	}

	// The canary, removed: the generation moved, CanaryPresent asks.
	h.run(t, "ip6tables-nft", "-F", CanaryChain)
	if ok, err := h.s.CanaryPresent(ctx); ok || err != nil {
		t.Errorf("CanaryPresent = %v, %v after the canary was flushed", ok, err)
	}
}

func TestStagedLoad(t *testing.T) {
	b := newBench(t, 300) // 900+ new chains per family: more than one stage
	for _, tc := range []struct {
		name    string
		backend Backend
		lim     stageLimits
		staged  bool
	}{
		{"nft", NFT, defaultStageLimits, true},
		// Small limits: sg-chain, INPUT and other chains split over batches.
		{"nft small batches", NFT, stageLimits{chains: 40, rules: 300, targets: 50}, true},
		{"legacy", Legacy, defaultStageLimits, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(tc.backend)
			h.s.stageLimits = tc.lim
			foreign(t, h, tc.backend.variant())
			before := foreignLines(h.k)
			st := mustApply(t, h.s, b.rs)
			restores := h.rec.Matching("-restore")
			if tc.staged != (len(restores) > 2) || st.Restores != len(restores) {
				t.Fatalf("%d restores (%+v)", len(restores), st)
			}
			var stages []iptablestest.Call
			for _, name := range []string{"iptables-nft-restore", "ip6tables-nft-restore"} {
				var fam []iptablestest.Call
				for _, c := range restores {
					if c.Name == name {
						fam = append(fam, c)
					}
				}
				if len(fam) > 0 {
					stages = append(stages, fam[:len(fam)-1]...) // the last is the main transaction
				}
			}
			appends := 0 // -A lines to chains an earlier stage created
			for _, c := range stages {
				for _, l := range strings.Split(c.Stdin, "\n") {
					if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" && !strings.Contains(c.Stdin, "\n:"+f[1]+" ") {
						appends++
					}
				}
			}
			if split := tc.lim != defaultStageLimits; split != (appends > 0) {
				t.Errorf("%d appends to chains of earlier stages, want split %v", appends, split)
			}
			for i, c := range stages {
				// A stage creates chains and fills them, nothing else; the
				// fake refuses a jump to a chain that does not exist yet.
				for _, l := range strings.Split(strings.TrimSpace(c.Stdin), "\n") {
					if !(strings.HasPrefix(l, "*") || strings.HasPrefix(l, ":") || strings.HasPrefix(l, "-A neutron-") || strings.HasPrefix(l, "-A moat-") || l == "COMMIT") {
						t.Fatalf("stage %d: line %q", i, l)
					}
				}
				if n := strings.Count(c.Stdin, "\n:"); n > tc.lim.chains {
					t.Errorf("stage %d declares %d chains", i, n)
				}
			}
			if st.ChainsCreated != chainCount(b.rs) {
				t.Errorf("created %d chains, want %d", st.ChainsCreated, chainCount(b.rs))
			}
			assertKernelOwned(t, h.k, b.rs)
			if got := foreignLines(h.k); !mapsEqual(got, before) {
				t.Errorf("foreign rules changed")
			}
		})
	}
}

// assertKernelOwned checks moat's part of the fake's tables against rs,
// where other tools' rules share them.
func assertKernelOwned(t *testing.T, k *iptablestest.Kernel, rs *firewall.Ruleset) {
	t.Helper()
	for _, f := range families {
		want, err := desiredTables(rsTables(rs, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, tb := range tableNames {
			got, err := parseSave(k.Save(f.String(), tb), tb)
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := planTable(tb, got[tb], want[i]); len(p.drift) > 0 {
				t.Errorf("%s %s: %q", f, tb, p.drift[:min(len(p.drift), 5)])
			}
		}
	}
}

func TestStageFailureLeavesOldRules(t *testing.T) {
	h := newFakeHost(NFT)
	small := newBench(t, 3)
	mustApply(t, h.s, small.rs)
	h.s.Invalidate()
	before4, before6 := h.k.Save("ipv4", "filter"), h.k.Save("ipv6", "filter")
	calls := 0
	h.k.FailRestore = func(string, string) error {
		calls++
		if calls == 2 {
			return errors.New("injected failure in the second stage")
		}
		return nil
	}
	big := newBench(t, 300)
	if _, err := h.s.Apply(context.Background(), big.rs); err == nil || !strings.Contains(err.Error(), "load new chains ahead") {
		t.Fatalf("Apply = %v", err)
	}
	// The first stage's chains exist, unreferenced; moat's jumps and the
	// old chains are as they were.
	got4 := h.k.Save("ipv4", "filter")
	for _, l := range strings.Split(before4, "\n") {
		if !strings.Contains(got4, l) {
			t.Errorf("line %q gone after a failed stage", l)
		}
	}
	if h.k.Save("ipv6", "filter") != before6 {
		t.Error("ipv6 changed")
	}
	h.k.FailRestore = nil
	if st := mustApply(t, h.s, big.rs); !st.Saved {
		t.Errorf("%+v", st)
	}
	assertKernel(t, h.k, big.rs)
}
