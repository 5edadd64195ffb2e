package nftables

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

// These tests drive the real nft (nftables 1.0.6 on Debian 12) in scratch
// network namespaces, one per test, deleted when it ends. Without root or
// nft they skip and say why, or fail with MOAT_REQUIRE_KERNEL=1 (as in
// CI).

func needKernel(t testing.TB) {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "nft")
}

func newNetns(t testing.TB) dataplane.Netns {
	t.Helper()
	return netnstest.New(t, "moat-nft")
}

func nft(t testing.TB, ns dataplane.Netns, stdin string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := ns.Run(context.Background(), in, "nft", args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func gen(t testing.TB, ns dataplane.Netns) uint32 {
	t.Helper()
	g, err := iptables.NFTGeneration(ns.Name)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustApply(t testing.TB, s *Syncer, rs *Ruleset) Stats {
	t.Helper()
	st, err := s.Apply(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// assertHolds checks with a syncer that knows nothing (so it reads the
// kernel) that the kernel holds rs exactly.
func assertHolds(t testing.TB, ns dataplane.Netns, rs *Ruleset) {
	t.Helper()
	drift, err := NewSyncer(ns).Check(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) > 0 {
		t.Fatalf("the kernel does not hold the ruleset:\n%s", strings.Join(drift, "\n"))
	}
}

// foreignTables is another tool's state in the namespace: a table of
// its own, tables named moat in families moat does not own, and an
// iptables-nft rule. None of it may ever change.
const foreignTables = `add table inet other
add set inet other blocked { type ipv4_addr; flags interval; elements = { 198.51.100.0/24 } }
add chain inet other input { type filter hook input priority 0; policy accept; }
add rule inet other input ip saddr @blocked counter drop comment "other tool"
add chain inet other helper
add rule inet other helper counter return
add table inet moat
add chain inet moat keep
add rule inet moat keep counter accept
add table netdev moat
add set netdev moat keep { type ifname; elements = { "eth9" } }
`

func loadForeign(t *testing.T, ns dataplane.Netns) string {
	t.Helper()
	nft(t, ns, foreignTables, "-f", "-")
	return foreignState(t, ns)
}

func foreignState(t *testing.T, ns dataplane.Netns) string {
	t.Helper()
	var b strings.Builder
	for _, tb := range []string{"inet other", "inet moat", "netdev moat"} {
		b.WriteString(nft(t, ns, "", append([]string{"list", "table"}, strings.Fields(tb)...)...))
	}
	return b.String()
}

// TestKernelPlan runs every change kind of TestPlan in the kernel: the
// old tables, then the syncer's incremental transaction to the new ones;
// a syncer that knows nothing then reads the kernel and finds exactly the
// new tables (so what the syncer writes and what it reads back agree),
// and its Apply commits nothing.
func TestKernelPlan(t *testing.T) {
	needKernel(t)
	ns := newNetns(t)
	before := loadForeign(t, ns)
	ctx := context.Background()
	l := twoPorts()
	cases := map[string]func(*tLayout){
		"group-rule-added": func(l *tLayout) {
			l.groups[0].in = append(l.groups[0].in, R("sgr 9", Kw("tcp dport 443 counter"), Accept))
		},
		"member-joins":  func(l *tLayout) { l.groups[0].members = append(l.groups[0].members, "10.0.0.78") },
		"member-leaves": func(l *tLayout) { l.groups[0].members = l.groups[0].members[1:] },
		"interval-grows": func(l *tLayout) {
			l.groups[0].members = append(l.groups[0].members, "10.1.0.0/25", "10.1.0.128/26", "10.1.0.200", "255.255.255.254/31")
		},
		"port-added": func(l *tLayout) {
			l.ports = append(l.ports, tPort{id: portC, mac: "fa:16:3e:00:00:0c", ips: []string{"192.168.1.14", "0.0.0.0/0"}, zone: 4099, groups: []string{sgWeb}})
		},
		"port-removed":          func(l *tLayout) { l.ports = l.ports[:1] },
		"port-security-off":     func(l *tLayout) { l.ports[0].open = true },
		"stateful-to-stateless": func(l *tLayout) { l.ports[0].stateless = true },
		"group-added-and-removed": func(l *tLayout) {
			l.groups[1] = tGroup{id: portC, in: []Rule{R("sgr x", Kw("ip saddr"), Ref("sg-"+portC), Accept)}, out: []Rule{R("sgr y", Accept)}, members: []string{"10.9.9.9"}}
			l.ports[1].groups = []string{portC}
		},
	}
	for _, name := range sortedKeys(cases) {
		t.Run(name, func(t *testing.T) {
			s := NewSyncer(ns)
			mustApply(t, s, l.ruleset())
			nl := twoPorts()
			cases[name](&nl)
			g0 := gen(t, ns)
			st := mustApply(t, s, nl.ruleset())
			if st.Read || st.Commits != 1 || st.TablesLoaded != 0 {
				t.Errorf("incremental apply: %+v, want one commit of a difference, no read", st)
			}
			if g := gen(t, ns); g != g0+1 {
				t.Errorf("the apply moved the generation by %d, want 1 (one transaction)", g-g0)
			}
			assertHolds(t, ns, nl.ruleset())
			fresh := NewSyncer(ns)
			if st := mustApply(t, fresh, nl.ruleset()); st.Commits != 0 {
				t.Errorf("a syncer that read the kernel committed %+v, want nothing", st)
			}
			// Back, for the next case.
			mustApply(t, s, l.ruleset())
			assertHolds(t, ns, l.ruleset())
		})
	}
	if got := foreignState(t, ns); got != before {
		t.Errorf("other tools' tables changed:\n--- before\n%s\n--- after\n%s", before, got)
	}
	if err := NewSyncer(ns).RemoveAll(ctx); err != nil {
		t.Fatal(err)
	}
	if out := nft(t, ns, "", "list", "tables"); strings.Contains(out, "ip moat") || strings.Contains(out, "bridge moat") {
		t.Errorf("RemoveAll left tables:\n%s", out)
	}
	if got := foreignState(t, ns); got != before {
		t.Errorf("RemoveAll changed other tools' tables:\n--- before\n%s\n--- after\n%s", before, got)
	}
}

// TestKernelAtomic: a transaction the kernel refuses halfway applies
// nothing — neither the commands before the bad one nor the generation —
// and the syncer, which forgot its state, reads and succeeds next time.
func TestKernelAtomic(t *testing.T) {
	needKernel(t)
	ns := newNetns(t)
	ctx := context.Background()
	s := NewSyncer(ns)
	l := twoPorts()
	mustApply(t, s, l.ruleset())
	listing := nft(t, ns, "", "list", "ruleset")
	g0 := gen(t, ns)

	// 1. An invalid element after valid commands, straight to nft: a
	// new chain, a new element, then an address nft cannot parse.
	nl := twoPorts()
	nl.groups[0].members = append(nl.groups[0].members, "10.0.0.99")
	nl.ports = append(nl.ports, tPort{id: portC, mac: "fa:16:3e:00:00:0c", ips: []string{"192.168.1.14"}, zone: 4099})
	p := planAll(s.owned, s.known, mustCompile(t, nl.ruleset()))
	p.ops = append(p.ops, op{verb: "add", obj: "element", table: IPTable, name: "sg-" + sgWeb, keys: []string{"10.0.0.300"}})
	err := s.k.commit(ctx, p)
	if err == nil {
		t.Fatal("nft took an invalid element")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("at line %d, add element ip moat sg-%s", len(p.ops), sgWeb)) {
		t.Errorf("the error does not name the refused command: %v", err)
	}
	// 2. An element that overlaps one in the kernel (the kernel, not nft's
	// parser, refuses it).
	p = planAll(s.owned, s.known, mustCompile(t, nl.ruleset()))
	p.ops = append(p.ops, op{verb: "add", obj: "element", table: IPTable, name: "sg-" + sgWeb, keys: []string{"192.168.1.0/24"}})
	if err := s.k.commit(ctx, p); err == nil {
		t.Fatal("the kernel took an overlapping interval")
	}
	if g := gen(t, ns); g != g0 {
		t.Errorf("refused transactions moved the generation by %d", g-g0)
	}
	if got := nft(t, ns, "", "list", "ruleset"); got != listing {
		t.Errorf("a refused transaction changed the ruleset:\n--- before\n%s\n--- after\n%s", listing, got)
	}

	// 3. Through Apply: a rule nft cannot parse together with good
	// changes; nothing applied, the error says where, the next Apply
	// reads and applies the fixed ruleset.
	bad := twoPorts()
	bad.groups[0].members = append(bad.groups[0].members, "10.0.0.99")
	bad.groups[0].in = append(bad.groups[0].in, R("sgr bad", Kw("tcp dport frobnicate"), Accept))
	if _, err := s.Apply(ctx, bad.ruleset()); err == nil || !strings.Contains(err.Error(), "(sgr bad)") {
		t.Fatalf("apply of a rule nft refuses: %v, want an error naming the rule", err)
	}
	if got := nft(t, ns, "", "list", "ruleset"); got != listing {
		t.Errorf("a refused apply changed the ruleset:\n--- before\n%s\n--- after\n%s", listing, got)
	}
	st := mustApply(t, s, nl.ruleset())
	if !st.Read || st.Commits != 1 {
		t.Errorf("apply after a failure: %+v, want a read and one commit", st)
	}
	assertHolds(t, ns, nl.ruleset())
}

// TestKernelDrift: other writers flush a chain, delete a verdict-map
// element, add a foreign object to moat's table, delete the table; the
// next Apply sees the generation moved, reads moat's tables, and repairs
// exactly that, in one transaction each time. A write to another table
// moves the generation too, and costs a read but no commit. Other tables
// survive everything.
func TestKernelDrift(t *testing.T) {
	needKernel(t)
	ns := newNetns(t)
	before := loadForeign(t, ns)
	s := NewSyncer(ns)
	rs := twoPorts().ruleset()
	mustApply(t, s, rs)
	if st := mustApply(t, s, rs); st.Read || st.Commits != 0 || st.Reads != 0 {
		t.Fatalf("apply on an untouched namespace: %+v, want no process at all", st)
	}
	chainA := "i-" + portA
	steps := []struct {
		name      string
		foreign   string // nft commands of another writer
		drift     string // expected in Stats.Drift ("" for none)
		fullLoads int
	}{
		{"flush a port chain", "flush chain ip moat " + chainA, "chain " + chainA + ": 0 rules, want 6", 0},
		{"insert a rule", "insert rule ip moat " + chainA + " accept", "chain " + chainA + ": 7 rules, want 6 (1 without moat's fingerprint)", 0},
		{"delete a verdict", `delete element ip moat dispatch { "qbr` + portA[:11] + `" . 0x0 }`, "map dispatch: 1 elements missing", 0},
		{"add a member", `add element ip moat sg-` + sgWeb + ` { 203.0.113.1 }`, "0 elements missing or changed, 1 unexpected", 0},
		{"add a chain", "add chain ip moat intruder", "chain intruder appeared", 0},
		{"add a counter", "add counter ip moat foreign", "it holds a counter", 1},
		{"delete the table", "delete table ip moat", "ip moat: table gone", 1},
		{"delete the bridge table", "delete table bridge moat", "bridge moat: table gone", 1},
		{"write another table", "add element inet other blocked { 192.0.2.1 }", "", 0},
	}
	for _, step := range steps {
		nft(t, ns, step.foreign+"\n", "-f", "-")
		g0 := gen(t, ns)
		st := mustApply(t, s, rs)
		if !st.Read {
			t.Fatalf("%s: the apply did not read the tables (generation moved)", step.name)
		}
		drift := strings.Join(st.Drift, "\n")
		switch {
		case step.drift == "" && (len(st.Drift) > 0 || st.Commits != 0):
			t.Errorf("%s: drift %q, %d commits, want none", step.name, drift, st.Commits)
		case step.drift != "" && (!strings.Contains(drift, step.drift) || st.Commits != 1):
			t.Errorf("%s: drift %q, %d commits, want %q repaired in one commit", step.name, drift, st.Commits, step.drift)
		}
		if st.TablesLoaded != step.fullLoads {
			t.Errorf("%s: %d tables loaded whole, want %d", step.name, st.TablesLoaded, step.fullLoads)
		}
		if want := g0 + uint32(st.Commits); gen(t, ns) != want {
			t.Errorf("%s: generation moved by %d, want %d", step.name, gen(t, ns)-g0, st.Commits)
		}
		assertHolds(t, ns, rs)
		if st := mustApply(t, s, rs); st.Read || st.Commits != 0 {
			t.Errorf("%s: the apply after the repair: %+v, want nothing", step.name, st)
		}
		if step.name == "write another table" {
			nft(t, ns, "delete element inet other blocked { 192.0.2.1 }\n", "-f", "-")
			mustApply(t, s, rs)
		}
	}
	if got := foreignState(t, ns); got != before {
		t.Errorf("other tools' tables changed:\n--- before\n%s\n--- after\n%s", before, got)
	}
}

// TestKernelFullLoadIsOneTransaction: the first load (and a replace of
// tables moat cannot diff) is one transaction for all tables, replacing
// what was there — no moment without moat's tables, no delete in one
// transaction and add in the next.
func TestKernelFullLoadIsOneTransaction(t *testing.T) {
	needKernel(t)
	ns := newNetns(t)
	before := loadForeign(t, ns)
	rs := twoPorts().ruleset()

	g0 := gen(t, ns)
	st := mustApply(t, NewSyncer(ns), rs)
	if st.Commits != 1 || st.TablesLoaded != 2 {
		t.Errorf("first apply: %+v, want both tables loaded in one commit", st)
	}
	if g := gen(t, ns); g != g0+1 {
		t.Errorf("the first load moved the generation by %d, want 1", g-g0)
	}
	assertHolds(t, ns, rs)

	// Stale tables of a former run: one the syncer can diff (a set too
	// many), one it cannot (a counter, which moat never writes).
	nft(t, ns, "add counter ip moat c\nadd set bridge moat old { type ifname; }\n", "-f", "-")
	g0 = gen(t, ns)
	st = mustApply(t, NewSyncer(ns), rs)
	if st.Commits != 1 || st.TablesLoaded != 1 || st.SetsDeleted != 1 {
		t.Errorf("apply over stale tables: %+v, want one commit: ip moat replaced, bridge moat's stale set deleted", st)
	}
	if g := gen(t, ns); g != g0+1 {
		t.Errorf("the apply moved the generation by %d, want 1", g-g0)
	}
	assertHolds(t, ns, rs)
	if out := nft(t, ns, "", "list", "counters"); strings.Contains(out, "moat") {
		t.Errorf("the replaced table kept its counter:\n%s", out)
	}
	if got := foreignState(t, ns); got != before {
		t.Errorf("other tools' tables changed:\n--- before\n%s\n--- after\n%s", before, got)
	}
}

// TestKernelDataTypes loads a set or map of every data type and flag
// combination the model offers, and reads each back equal.
func TestKernelDataTypes(t *testing.T) {
	needKernel(t)
	ns := newNetns(t)
	rs := &Ruleset{Tables: []*Table{{ID: IP6Table, Sets: []*Set{
		{Name: "names", Key: []DataType{TypeIfName}, Elements: []Element{E(IfName("a")), E(IfName("tap0123456789a"))}},
		{Name: "marks", Key: []DataType{TypeMark}, Value: TypeMark, Elements: []Element{M(Hex(1), Num(0)), M(Num(7), Hex(0xffffffff))}},
		{Name: "macs", Key: []DataType{TypeEtherAddr}, Elements: []Element{E(ParseMAC("FA:16:3E:00:00:01"))}},
		{Name: "v6", Key: []DataType{TypeIPv6Addr}, Interval: true, Elements: IntervalElements(MergePrefixes(prefixes([]string{"2001:db8::/64", "2001:db8:0:1::/64", "fe80::1", "::/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120"})))},
		{Name: "v6points", Key: []DataType{TypeIPv6Addr}, Elements: []Element{E(Addr(mustAddr("2001:db8::12")))}},
		{Name: "ports", Key: []DataType{TypeInetService}, Interval: true, Elements: []Element{E(Num(22)), E(NumRange(5000, 5010))}},
		{Name: "zones", Key: []DataType{TypeIfName, TypeEtherAddr}, Value: TypeCTZone, Elements: []Element{M(Num(65535), IfName("q"), ParseMAC("00:00:00:00:00:00"))}},
		{Name: "spoof6", Key: []DataType{TypeIfName, TypeEtherAddr, TypeIPv6Addr}, Interval: true, Elements: []Element{
			E(IfName("qbr1"), ParseMAC("fa:16:3e:00:00:01"), Prefix(mustPrefix("::/0"))),
			E(IfName("qbr2"), ParseMAC("fa:16:3e:00:00:02"), IP(Interval{mustAddr("2001:db8::1"), mustAddr("2001:db8::9")})),
		}},
	}, Chains: []*Chain{
		{Name: "c", Rules: []Rule{R(`a "quoted" comment; with # and \ and ünïcödé`, Kw("meta l4proto 58"), Accept)}},
		{Name: "v", Rules: []Rule{R("", Kw("iifname"), IfNamePrefix("qbr"), Goto("c"))}},
	}}}}
	s := NewSyncer(ns, IP6Table)
	mustApply(t, s, rs)
	drift, err := NewSyncer(ns, IP6Table).Check(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) > 0 {
		t.Errorf("read back differs:\n%s\nkernel:\n%s", strings.Join(drift, "\n"), nft(t, ns, "", "list", "ruleset"))
	}
	if out := nft(t, ns, "", "list", "chain", "ip6", "moat", "c"); !strings.Contains(out, `comment "a _quoted_ comment; with # and _ and ünïcödé #`) {
		t.Errorf("comment not written as cleaned:\n%s", out)
	}
}

// IntervalElements is the set elements of intervals.
func IntervalElements(ivs []Interval) []Element {
	var out []Element
	for _, t := range IntervalTerms(ivs) {
		out = append(out, E(t))
	}
	return out
}

// TestKernelNamesAreNotKeywords checks the keyword list against the nft
// installed: every word the installed nft refuses as a chain name is in
// the list (the list may hold more: it covers later releases too).
func TestKernelNamesAreNotKeywords(t *testing.T) {
	needKernel(t)
	ns := newNetns(t)
	var b strings.Builder
	b.WriteString("add table ip kw\n")
	candidates := append(slices.Clone(keywords), "raw", "forward", "dispatch", "zone_of", "stateless", "spoof_ok", "vm_taps", "sg-fallback", "prerouting", "postrouting")
	for _, w := range candidates {
		fmt.Fprintf(&b, "add chain ip kw %s\n", w)
	}
	// nft -c reports every line it cannot parse.
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	stderr, _ := cmd.CombinedOutput()
	refused := map[string]bool{}
	for _, line := range strings.Split(string(stderr), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "add" && f[1] == "chain" {
			refused[f[4]] = true
		}
	}
	if len(refused) == 0 {
		t.Fatalf("nft refused no keyword at all; output:\n%s", stderr)
	}
	for w := range refused {
		if checkName("chain", w) == nil {
			t.Errorf("nft refuses the chain name %q, the syncer lets it through", w)
		}
	}
}
