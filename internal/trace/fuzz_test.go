package trace

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/hybrid"
)

// The parsers take whatever a file holds: they must return an error or a
// ruleset, never panic, and a trace through what they return must not
// panic either.

func seedDumps(f *testing.F) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "neutron", "*"))
	for _, d := range dirs {
		for _, name := range []string{"iptables-save.txt", "ip6tables-save.txt"} {
			if b, err := os.ReadFile(filepath.Join(d, name)); err == nil {
				f.Add(string(b))
			}
		}
	}
	f.Add("*filter\n:FORWARD ACCEPT [1:2]\n[3:4] -A FORWARD -c 1 2 -m physdev ! --physdev-in tap+ -g x\n:x - [0:0]\nCOMMIT\n")
	f.Add("*filter\n-A FORWARD -m set ! --match-set s src,dst -m comment --comment \"\\\"\" -j CT --zone\nCOMMIT\n")
}

// FuzzParseSave also checks that what the parser returns survives a round
// trip: written back as iptables-save -c prints it and parsed again, it is
// the same.
func FuzzParseSave(f *testing.F) {
	seedDumps(f)
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseSaveString(s, strings.Contains(s, "::"))
		if err != nil {
			return
		}
		var b strings.Builder
		writeSave(&b, rs)
		again, err := ParseSaveString(b.String(), rs.IPv6)
		if err != nil {
			t.Fatalf("parsing what was written: %v\ninput:\n%q\nwritten:\n%q", err, s, b.String())
		}
		if a, w := saveShape(rs), saveShape(again); a != w {
			t.Fatalf("round trip changed the rules:\nparsed   %s\nreparsed %s\ninput:\n%q\nwritten:\n%q", a, w, s, b.String())
		}
		for _, tb := range rs.Tables {
			for _, c := range tb.Chains {
				for _, r := range c.Rules {
					r.compile()
					r.indexKey()
				}
			}
		}
		h := &Host{IPv4: rs, IPv6: rs}
		for _, tap := range rs.Taps() {
			for _, q := range []Query{
				{Tap: tap, Direction: Ingress, Protocol: "tcp", Src: "10.0.0.1", Dst: "10.0.0.2", DstPort: "22"},
				{Tap: tap, Direction: Egress, Protocol: "ipv6-icmp", Src: "fe80::1", Dst: "ff02::1", ICMPType: "135"},
			} {
				if res, err := h.Trace(q); err == nil {
					_ = WriteText(&strings.Builder{}, res)
				}
			}
			if ex, err := h.Explain("", tap); err == nil {
				_ = WriteExplainText(&strings.Builder{}, ex)
			}
		}
	})
}

// writeSave writes rs as iptables-save -c prints it: counters where the
// input had them.
func writeSave(b *strings.Builder, rs *Ruleset) {
	var w hybrid.SaveWriter
	for _, tb := range rs.Tables {
		w.Table(tb.Name)
		for _, c := range tb.Chains {
			w.Chain(c.Name, c.Policy, c.Counters)
		}
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				w.Rule(c.Name, r.Text, r.Counters)
			}
		}
		w.Commit()
	}
	b.WriteString(w.String())
}

// saveShape is what a dump says, less line numbers, as text to compare.
func saveShape(rs *Ruleset) string {
	var b strings.Builder
	for _, tb := range rs.Tables {
		fmt.Fprintf(&b, "table %q:", tb.Name)
		for _, c := range tb.Chains {
			fmt.Fprintf(&b, " chain %q policy %q %+v [", c.Name, c.Policy, c.Counters)
			for _, r := range c.Rules {
				fmt.Fprintf(&b, " %d %q %+v", r.Num, r.Text, r.Counters)
			}
			b.WriteString(" ]")
		}
		b.WriteString("; ")
	}
	return b.String()
}

// FuzzParseIPSets also checks the round trip: the sets written back as
// ipset list prints them (which can say everything either format can) and
// parsed again are the same.
func FuzzParseIPSets(f *testing.F) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "neutron", "*", "ipset.txt"))
	for _, p := range dirs {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("create a hash:net family inet6\nadd a ::/0 nomatch\nadd a 10.0.0.1\n")
	f.Fuzz(func(t *testing.T, s string) {
		sets, err := ParseIPSets(strings.NewReader(s))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, name := range slices.Sorted(maps.Keys(sets)) {
			set := sets[name]
			fmt.Fprintf(&b, "Name: %s\nType: %s\nHeader: family %s\nMembers:\n", set.Name, set.Type, set.Family)
			for _, m := range set.Members {
				b.WriteString(m + "\n")
			}
			b.WriteString("\n")
		}
		again, err := ParseIPSets(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("parsing what was written: %v\ninput:\n%q\nwritten:\n%q", err, s, b.String())
		}
		if !reflect.DeepEqual(sets, again) {
			t.Fatalf("round trip changed the sets:\nparsed   %+v\nreparsed %+v\ninput:\n%q\nwritten:\n%q", sets, again, s, b.String())
		}
		for _, set := range sets {
			_ = set.Contains(mustAddr("10.0.0.1"))
			_ = set.Contains(mustAddr("2001:db8::1"))
		}
	})
}

func FuzzQuery(f *testing.F) {
	f.Add("c0a350e0", "ingress", "forward", "ipip", "192.168.1.13", "", "", "22", "", "", "", "new")
	f.Add("", "egress", "input", "udp", "", "8.8.8.8", "67", "68", "", "", "fa:16:3e:00:00:99", "established")
	f.Add("c0", "egress", "", "icmp", "fe80::1", "ff02::1", "", "", "135", "0", "zz", "untracked")
	h := &Host{}
	for _, fam := range []struct {
		file string
		v6   bool
	}{{"iptables-save.txt", false}, {"ip6tables-save.txt", true}} {
		b, err := os.ReadFile(filepath.Join("testdata", "neutron", "edge_rules", fam.file))
		if err != nil {
			f.Fatal(err)
		}
		rs, err := ParseSaveString(string(b), fam.v6)
		if err != nil {
			f.Fatal(err)
		}
		if fam.v6 {
			h.IPv6 = rs
		} else {
			h.IPv4 = rs
		}
	}
	f.Fuzz(func(t *testing.T, port, dir, hook, proto, src, dst, sport, dport, itype, icode, mac, state string) {
		res, err := h.Trace(Query{Port: port, Direction: Direction(dir), Hook: Hook(hook), Protocol: proto, Src: src, Dst: dst,
			SrcPort: sport, DstPort: dport, ICMPType: itype, ICMPCode: icode, SrcMAC: mac, State: state})
		if err != nil {
			return
		}
		if res.Verdict == "" || res.DecidedBy == nil {
			t.Fatalf("trace without a verdict: %+v", res)
		}
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
