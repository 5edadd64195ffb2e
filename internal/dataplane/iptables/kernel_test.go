package iptables

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables/iptablestest"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

// These tests drive the real iptables tools in scratch network namespaces,
// one per test and backend, deleted when the test ends. They need root and
// the iptables and ipset packages; without them they skip and say why, or
// fail with MOAT_REQUIRE_KERNEL=1 (as in CI).

// needKernel skips the test unless it can create namespaces and run
// backend's tools.
func needKernel(t testing.TB, backend Backend) {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, append(backend.Binaries(), "ipset")...)
}

// createSets loads rs's ipsets (the ipset syncer's job in the agent).
func createSets(t testing.TB, ex dataplane.Exec, rs *firewall.Ruleset) {
	t.Helper()
	var b strings.Builder
	if err := firewall.WriteIPSetSave(&b, rs.IPSets); err != nil {
		t.Fatal(err)
	}
	netnstest.Run(t, ex, b.String()+"\n", "ipset", "-exist", "restore")
}

// appliedBench compiles the benchmark workload for a host of ports, loads
// its sets into ns and applies its rules with s.
func appliedBench(t testing.TB, ns dataplane.Netns, s *Syncer, ports int) *bench {
	t.Helper()
	b := newBench(t, ports)
	createSets(t, ns, b.rs)
	if _, err := s.Apply(context.Background(), b.rs); err != nil {
		t.Fatal(err)
	}
	return b
}

// kernelTables reads both tables of a family with the backend's save tool.
func kernelTables(t testing.TB, ex dataplane.Exec, backend Backend, f Family) map[string]*tableState {
	t.Helper()
	out := map[string]*tableState{}
	for _, tb := range tableNames {
		ts, err := parseSave(netnstest.Run(t, ex, "", backend.Command(f, "save"), "-t", tb), tb)
		if err != nil {
			t.Fatal(err)
		}
		out[tb] = ts[tb]
	}
	return out
}

// assertInstalled checks that iptables-save prints exactly rs's owned
// chains (byte for byte, no protocol normalisation) and the canary, and
// that every built-in chain starts with moat's jumps and holds no other.
func assertInstalled(t *testing.T, ex dataplane.Exec, backend Backend, rs *firewall.Ruleset) {
	t.Helper()
	for _, f := range families {
		want, err := desiredTables(rsTables(rs, f))
		if err != nil {
			t.Fatal(err)
		}
		got := kernelTables(t, ex, backend, f)
		for i, tb := range tableNames {
			g, w := got[tb], want[i]
			if !slices.EqualFunc(g.owned, w.owned, func(a, b firewall.Chain) bool {
				return a.Name == b.Name && slices.Equal(a.Rules, b.Rules)
			}) {
				t.Errorf("%s %s: owned chains differ:\n%s", f, tb, chainsDiff(w.owned, g.owned))
			}
			for _, c := range g.builtins {
				wc, _ := w.builtin(c.Name)
				var mine []string
				for _, r := range c.Rules {
					if ownedRule(r) {
						mine = append(mine, r)
					}
				}
				if !slices.Equal(mine, wc.Rules) || !slices.Equal(c.Rules[:len(wc.Rules)], wc.Rules) {
					t.Errorf("%s %s %s: rules %q, want moat's %q on top", f, tb, c.Name, c.Rules, wc.Rules)
				}
			}
		}
	}
}

func chainsDiff(want, got []firewall.Chain) string {
	var w, g strings.Builder
	for _, c := range want {
		for _, r := range c.Rules {
			w.WriteString(c.Name + " " + r + "\n")
		}
		w.WriteString(":" + c.Name + "\n")
	}
	for _, c := range got {
		for _, r := range c.Rules {
			g.WriteString(c.Name + " " + r + "\n")
		}
		g.WriteString(":" + c.Name + "\n")
	}
	return lineDiff(w.String(), g.String())
}

// foreignSetup is what other tools leave in a namespace: libvirt's chains
// and jumps (above where moat's go), docker's user chain and nat rules, a
// policy moat must not reset.
const foreignSetup4 = `*filter
:LIBVIRT_FWI - [0:0]
:LIBVIRT_INP - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -j LIBVIRT_INP
-A FORWARD -j DOCKER-USER
-A FORWARD -j LIBVIRT_FWI
-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 53 -j ACCEPT
-A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
*raw
-A PREROUTING -i virbr0 -j ACCEPT
COMMIT
`

const foreignSetup6 = `*filter
:LIBVIRT_FWI - [0:0]
-A FORWARD -j LIBVIRT_FWI
-A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp6-port-unreachable
COMMIT
`

// foreignState is every line of iptables-save that is not moat's (chain
// lines, rules, policies), per family and table, for before/after checks.
func foreignState(t testing.TB, ex dataplane.Exec, backend Backend) string {
	t.Helper()
	var b strings.Builder
	for _, f := range families {
		for _, tb := range []string{"filter", "raw", "nat"} {
			for _, l := range strings.Split(netnstest.Run(t, ex, "", backend.Command(f, "save"), "-t", tb), "\n") {
				if strings.HasPrefix(l, "#") || strings.Contains(l, "neutron-") || strings.Contains(l, CanaryChain) {
					continue
				}
				b.WriteString(f.String() + " " + l + "\n")
			}
		}
	}
	return b.String()
}

// scenarios returns the compiled rulesets of the reference scenarios.
func scenarios(t testing.TB) []*firewall.Ruleset {
	t.Helper()
	var out []*firewall.Ruleset
	for _, file := range []string{"sample.json", "edge.json"} {
		path := filepath.Join("..", "..", "firewall", "testdata", "neutron", file)
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sf, err := spec.Parse(fh, strings.TrimSuffix(file, ".json"))
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		states, err := sf.HostStates()
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range states {
			rs, err := firewall.Compile(st)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rs)
		}
	}
	return out
}

// TestKernelApplyScenarios applies every reference scenario and a workload
// one after the other into one namespace with other tools' rules, and
// checks after each that the kernel holds exactly the desired state, that
// Check sees no drift and that the other tools' rules are untouched; then
// RemoveAll.
func TestKernelApplyScenarios(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			t.Parallel()
			ns := netnstest.New(t, "moat-ipt")
			ctx := context.Background()
			netnstest.Run(t, ns, foreignSetup4, backend.Command(IPv4, "restore"), "--noflush")
			netnstest.Run(t, ns, foreignSetup6, backend.Command(IPv6, "restore"), "--noflush")
			netnstest.Run(t, ns, "", backend.Command(IPv4, ""), "-P", "FORWARD", "DROP")
			before := foreignState(t, ns, backend)

			s := NewSyncer(ns, backend)
			rss := append(scenarios(t), newBench(t, 30).rs)
			for i, rs := range rss {
				createSets(t, ns, rs)
				st, err := s.Apply(ctx, rs)
				if err != nil {
					t.Fatalf("ruleset %d: %v", i, err)
				}
				if (i == 0) != st.Saved {
					t.Errorf("ruleset %d: Saved = %v", i, st.Saved)
				}
				assertInstalled(t, ns, backend, rs)
				if d, err := s.Check(ctx, rs); err != nil || len(d) > 0 {
					t.Errorf("ruleset %d: drift %q, %v", i, d, err)
				}
				if got := foreignState(t, ns, backend); got != before {
					t.Errorf("ruleset %d changed foreign rules:\n%s", i, lineDiff(before, got))
				}
				// A second Apply of the same ruleset writes nothing.
				if st, err := s.Apply(ctx, rs); err != nil || st.Restores != 0 {
					t.Errorf("ruleset %d again: %+v, %v", i, st, err)
				}
			}
			if ok, err := s.CanaryPresent(ctx); err != nil || !ok {
				t.Errorf("CanaryPresent = %v, %v", ok, err)
			}
			if err := s.RemoveAll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := foreignState(t, ns, backend); got != before {
				t.Errorf("RemoveAll changed foreign rules:\n%s", lineDiff(before, got))
			}
			for _, f := range families {
				for _, tb := range tableNames {
					if out := netnstest.Run(t, ns, "", backend.Command(f, "save"), "-t", tb); strings.Contains(out, "neutron-") || strings.Contains(out, CanaryChain) {
						t.Errorf("%s %s after RemoveAll:\n%s", f, tb, out)
					}
				}
			}
			if ok, err := s.CanaryPresent(ctx); err != nil || ok {
				t.Errorf("CanaryPresent after RemoveAll = %v, %v", ok, err)
			}
		})
	}
}

// TestKernelIncremental adds one rule to one app group and checks that the
// restore input inserts it into exactly the chains of the ports in that
// group, then adds and removes ports.
func TestKernelIncremental(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			t.Parallel()
			ns := netnstest.New(t, "moat-ipt")
			ctx := context.Background()
			netnstest.Run(t, ns, foreignSetup4, backend.Command(IPv4, "restore"), "--noflush")
			before := foreignState(t, ns, backend)
			rec := &iptablestest.Recorder{Exec: ns}
			s := NewSyncer(rec, backend)
			b := appliedBench(t, ns, s, 50)

			b.AddRule(b.Apps[7], 7777)
			rs := b.compile(t)
			rec.Reset()
			st, err := s.Apply(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			calls := rec.Calls()
			if len(calls) != 1 || calls[0].Name != backend.Command(IPv4, "restore") {
				t.Fatalf("calls %v, want one IPv4 restore", calls)
			}
			var want []string
			for i := 7; i < 50; i += 10 {
				want = append(want, "neutron-openvswi-i"+b.State.Ports[i].ID[:10])
			}
			assertOnlyInserts(t, calls[0].Stdin, want, "-p 6 -m tcp --dport 7777 -j RETURN")
			if st.ChainsPatched != len(want) || st.ChainsWritten() != len(want) || st.Saved {
				t.Errorf("stats %+v", st)
			}
			assertInstalled(t, ns, backend, rs)
			if d, err := s.Check(ctx, rs); err != nil || len(d) > 0 {
				t.Errorf("drift %q, %v", d, err)
			}
			// A port comes: its chains are created, the dispatch chains
			// (two rules per port) patched, not rewritten.
			b.State.Ports = append(b.State.Ports, firewall.Port{
				ID: "ffffffff-0000-4000-8000-000000000001", MAC: "fa:16:3e:ff:00:01",
				FixedIPs: []string{"10.200.0.1"}, SecurityGroups: []string{b.Common, b.Apps[0]}, DeviceOwner: "compute:nova",
			})
			rs = b.compile(t)
			createSets(t, ns, rs)
			if st, err = s.Apply(ctx, rs); err != nil {
				t.Fatal(err)
			}
			if st.ChainsRewritten != 0 || st.ChainsCreated == 0 || st.ChainsPatched == 0 || st.Bytes > 20000 {
				t.Errorf("port added: %+v", st)
			}
			assertInstalled(t, ns, backend, rs)
			// And goes.
			b.State.Ports = slices.Delete(slices.Clone(b.State.Ports), 10, 11)
			rs = b.compile(t)
			if st, err = s.Apply(ctx, rs); err != nil {
				t.Fatal(err)
			}
			if st.ChainsRewritten != 0 || st.ChainsDeleted == 0 || st.ChainsPatched == 0 || st.Bytes > 5000 {
				t.Errorf("port removed: %+v", st)
			}
			assertInstalled(t, ns, backend, rs)
			if d, err := s.Check(ctx, rs); err != nil || len(d) > 0 {
				t.Errorf("drift %q, %v", d, err)
			}
			if got := foreignState(t, ns, backend); got != before {
				t.Errorf("foreign rules changed:\n%s", lineDiff(before, got))
			}
		})
	}
}

// TestKernelDrift edits moat's chains behind its back and checks that Check
// reports it and Apply repairs it.
func TestKernelDrift(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			t.Parallel()
			ns := netnstest.New(t, "moat-ipt")
			ctx := context.Background()
			s := NewSyncer(ns, backend)
			b := appliedBench(t, ns, s, 8)
			port := "neutron-openvswi-i" + b.State.Ports[3].ID[:10]
			ipt4, ipt6 := backend.Command(IPv4, ""), backend.Command(IPv6, "")
			for _, tc := range []struct {
				name       string
				cmds       [][]string
				drift      string
				canaryGone bool
			}{
				{"port chain flushed", [][]string{{ipt4, "-F", port}}, "ipv4 filter: chain " + port + " differs", false},
				{"jump deleted", [][]string{{ipt6, "-D", "FORWARD", "-j", "neutron-openvswi-FORWARD"}}, "ipv6 filter: built-in chain FORWARD", false},
				{"raw jump deleted", [][]string{{ipt4, "-t", "raw", "-D", "PREROUTING", "-j", "neutron-openvswi-PREROUTING"}}, "ipv4 raw: built-in chain PREROUTING", false},
				{"canary deleted", [][]string{{ipt6, "-F", CanaryChain}, {ipt6, "-X", CanaryChain}}, "ipv6 filter: missing chain " + CanaryChain, true},
				{"table flushed", [][]string{{ipt4, "-F"}}, "ipv4 filter: built-in chain", true},
				{"foreign jump on top", [][]string{{ipt4, "-I", "FORWARD", "-j", "ACCEPT"}}, "ipv4 filter: built-in chain FORWARD", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					for _, c := range tc.cmds {
						netnstest.Run(t, ns, "", c[0], c[1:]...)
					}
					ok, err := s.CanaryPresent(ctx)
					if err != nil || ok != !tc.canaryGone {
						t.Errorf("CanaryPresent = %v, %v", ok, err)
					}
					if !ok {
						s.Invalidate() // what the agent does
					}
					d, err := s.Check(ctx, b.rs)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, tc.drift) }) {
						t.Errorf("drift %q, want %q", d, tc.drift)
					}
					if _, err := s.Apply(ctx, b.rs); err != nil {
						t.Fatal(err)
					}
					if d, err := s.Check(ctx, b.rs); err != nil || len(d) > 0 {
						t.Errorf("after repair: drift %q, %v", d, err)
					}
					if ok, err := s.CanaryPresent(ctx); err != nil || !ok {
						t.Errorf("after repair: CanaryPresent = %v, %v", ok, err)
					}
				})
			}
			// The foreign ACCEPT the last case inserted is still there,
			// below moat's jumps.
			out := netnstest.Run(t, ns, "", ipt4, "-S", "FORWARD")
			if !strings.Contains(out, "-A FORWARD -j neutron-openvswi-FORWARD\n-A FORWARD -j ACCEPT\n") {
				t.Errorf("FORWARD:\n%s", out)
			}
		})
	}
}

// TestKernelFailedRestoreLeavesState makes a restore fail (a rule names an
// ipset that does not exist) and checks the kernel kept the previous state,
// and that the next Apply converges once the set exists.
func TestKernelFailedRestoreLeavesState(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			t.Parallel()
			ns := netnstest.New(t, "moat-ipt")
			ctx := context.Background()
			s := NewSyncer(ns, backend)
			b := appliedBench(t, ns, s, 6)
			before := [2]map[string]*tableState{kernelTables(t, ns, backend, IPv4), kernelTables(t, ns, backend, IPv6)}

			// A new group with a remote-group rule on port 0: a new set.
			g := firewall.SecurityGroup{ID: "0badc0de-0000-4000-8000-000000000000", Rules: []firewall.Rule{{
				Direction: firewall.Ingress, Ethertype: firewall.IPv4, RemoteGroupID: "0badc0de-0000-4000-8000-000000000000",
			}}}
			b.State.SecurityGroups = append(b.State.SecurityGroups, g)
			b.State.Ports[0].SecurityGroups = append(slices.Clone(b.State.Ports[0].SecurityGroups), g.ID)
			b.State.GroupMembers[g.ID] = []string{"10.99.0.1"}
			rs := b.compile(t)
			_, err := s.Apply(ctx, rs)
			if err == nil {
				t.Fatal("Apply with a missing ipset succeeded")
			}
			t.Logf("expected failure: %v", err)
			if !strings.Contains(err.Error(), "filter table failed") {
				t.Errorf("error does not name the table: %v", err)
			}
			for i, f := range families {
				after := kernelTables(t, ns, backend, f)
				if !equalChains(after["filter"].owned, before[i]["filter"].owned) || !equalChains(after["filter"].builtins, before[i]["filter"].builtins) {
					t.Errorf("%s filter changed by a failed restore", f)
				}
			}
			createSets(t, ns, rs)
			st, err := s.Apply(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Saved {
				t.Errorf("no re-read after a failure: %+v", st)
			}
			assertInstalled(t, ns, backend, rs)
		})
	}
}

func TestKernelInstalledZones(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			t.Parallel()
			ns := netnstest.New(t, "moat-ipt")
			ctx := context.Background()
			s := NewSyncer(ns, backend)
			for _, rs := range scenarios(t) {
				createSets(t, ns, rs)
				if _, err := s.Apply(ctx, rs); err != nil {
					t.Fatal(err)
				}
				got, err := s.InstalledZones(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// Stateless ports have a zone in the compiler but --notrack
				// rules in the kernel: only ports with zone rules count.
				raw := strings.Join(rsTables(rs, IPv4).Raw.Chains[len(rs.IPv4.Raw.Chains)-1].Rules, "\n")
				want := map[string]int{}
				for _, pz := range rs.PortZones {
					if strings.Contains(raw, `"Set zone for `+pz.PortID+`"`) {
						want[pz.PortID] = pz.Zone
					}
				}
				if !maps2Equal(got, want) {
					t.Errorf("zones %v, want %v", got, want)
				}
			}
		})
	}
}

// TestFakeMatchesKernel runs the same restore inputs and commands through
// the fake and the real tools and compares what iptables-save prints, so
// that the fake's semantics (and the unit tests built on it) stay honest.
func TestFakeMatchesKernel(t *testing.T) {
	steps := []struct {
		cmd   []string
		stdin string
		fails bool
	}{
		{cmd: []string{"restore", "--noflush"}, stdin: foreignSetup4},
		{cmd: []string{"restore", "--noflush"}, stdin: "*filter\n:neutron-openvswi-a - [0:0]\n:neutron-openvswi-b - [0:0]\n-A neutron-openvswi-a -p 4 -j RETURN\n-A neutron-openvswi-a -m comment --comment \"two words\" -j neutron-openvswi-b\n-A neutron-openvswi-b -m comment --comment one -j DROP\n-I FORWARD 1 -j neutron-openvswi-a\nCOMMIT\n"},
		// ":chain" flushes an existing chain in --noflush mode.
		{cmd: []string{"restore", "--noflush"}, stdin: "*filter\n:neutron-openvswi-a - [0:0]\n-A neutron-openvswi-a -p tcp -m tcp --dport 22 -j RETURN\nCOMMIT\n"},
		// A failing table leaves itself unchanged but keeps the one before.
		{cmd: []string{"restore", "--noflush"}, stdin: "*raw\n:neutron-openvswi-r - [0:0]\n-A PREROUTING -j neutron-openvswi-r\nCOMMIT\n*filter\n-F neutron-openvswi-b\n-A neutron-openvswi-b -j nosuchchain\nCOMMIT\n", fails: true},
		// Deleting a chain still referenced fails.
		{cmd: []string{"restore", "--noflush"}, stdin: "*filter\n-F neutron-openvswi-a\n-X neutron-openvswi-a\nCOMMIT\n", fails: true},
		// Deleting a rule that does not exist fails.
		{cmd: []string{"restore", "--noflush"}, stdin: "*filter\n-D FORWARD -j neutron-openvswi-b\nCOMMIT\n", fails: true},
		{cmd: []string{"restore", "--noflush"}, stdin: "*filter\n-D FORWARD -j neutron-openvswi-a\n:neutron-openvswi-a - [0:0]\n:neutron-openvswi-b - [0:0]\n-X neutron-openvswi-a\n-X neutron-openvswi-b\n-I INPUT 2 -j DROP\nCOMMIT\n"},
		{cmd: []string{"", "-I", "FORWARD", "3", "-m", "comment", "--comment", "it's \"quoted\"", "-j", "ACCEPT"}},
		{cmd: []string{"", "-D", "FORWARD", "1"}},
		// Index too big.
		{cmd: []string{"", "-I", "INPUT", "9", "-j", "ACCEPT"}, fails: true},
	}
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			t.Parallel()
			ns := netnstest.New(t, "moat-ipt")
			fake := iptablestest.New()
			ctx := context.Background()
			for i, st := range steps {
				name := backend.Command(IPv4, st.cmd[0])
				var in []byte
				if st.stdin != "" {
					in = []byte(st.stdin)
				}
				_, errReal := ns.Run(ctx, in, name, st.cmd[1:]...)
				_, errFake := fake.Run(ctx, in, name, st.cmd[1:]...)
				if (errReal != nil) != st.fails || (errFake != nil) != st.fails {
					t.Fatalf("step %d: real error %v, fake error %v, want failure %v", i, errReal, errFake, st.fails)
				}
				for _, tb := range []string{"filter", "raw", "nat"} {
					real := stripComments(netnstest.Run(t, ns, "", backend.Command(IPv4, "save"), "-t", tb))
					fk := stripComments(netnstest.Run(t, fake, "", backend.Command(IPv4, "save"), "-t", tb))
					if real != fk {
						t.Errorf("step %d, table %s:\n--- kernel\n%s--- fake\n%s", i, tb, real, fk)
					}
				}
			}
		})
	}
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// TestKernelStagedLoad loads enough ports that iptables-nft gets the new
// chains in stages ahead of the main transaction, next to other tools'
// rules.
func TestKernelStagedLoad(t *testing.T) {
	needKernel(t, NFT)
	for _, tc := range []struct {
		name string
		lim  stageLimits
	}{
		{"default limits", defaultStageLimits},
		// Chains declared in one batch and continued by appends in the next.
		{"chains split over batches", stageLimits{chains: 40, rules: 300, targets: 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testKernelStagedLoad(t, tc.lim)
		})
	}
}

func testKernelStagedLoad(t *testing.T, lim stageLimits) {
	ns := netnstest.New(t, "moat-ipt")
	ctx := context.Background()
	netnstest.Run(t, ns, foreignSetup4, "iptables-nft-restore", "--noflush")
	before := foreignState(t, ns, NFT)
	rec := &iptablestest.Recorder{Exec: ns}
	s := NewSyncer(rec, NFT)
	s.stageLimits = lim
	b := newBench(t, 300)
	createSets(t, ns, b.rs)
	st, err := s.Apply(ctx, b.rs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Matching("-restore")); n <= 2 || st.Restores != n {
		t.Errorf("%d restores (%+v), want stages", n, st)
	}
	assertInstalled(t, ns, NFT, b.rs)
	if got := foreignState(t, ns, NFT); got != before {
		t.Errorf("foreign rules changed:\n%s", lineDiff(before, got))
	}
	if d, err := s.Check(ctx, b.rs); err != nil || len(d) > 0 {
		t.Errorf("drift %q, %v", d, err)
	}
}
