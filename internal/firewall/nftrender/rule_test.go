package nftrender

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/hybrid"
)

// ruleLine renders one translated rule as the syncer writes it, without
// its comment.
func ruleLine(t *testing.T, r nft.Rule) string {
	t.Helper()
	chains := []*nft.Chain{{Name: "c", Rules: []nft.Rule{r}}}
	if last := r.Terms[len(r.Terms)-1].String(); strings.HasPrefix(last, "jump ") {
		chains = append(chains, &nft.Chain{Name: strings.TrimPrefix(last, "jump ")})
	}
	rs := &nft.Ruleset{Tables: []*nft.Table{{ID: nft.IPTable, Chains: chains, Sets: []*nft.Set{
		{Name: "NIPv4g", Key: []nft.DataType{nft.TypeIPv4Addr}, Interval: true},
	}}}}
	b, err := nft.Script(rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "add rule ip moat c "); ok {
			return rest[:strings.LastIndex(rest, ` comment "`)]
		}
	}
	t.Fatalf("no rule in:\n%s", b)
	return ""
}

func TestRuleTranslation(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:01")
	sg := &hybrid.Origin{Kind: hybrid.OriginSGRule, Rules: []hybrid.SGRuleRef{{GroupID: "g", RuleID: "r1"}, {GroupID: "g", RuleID: "r2"}}}
	ret := hybrid.Action{Kind: hybrid.Return}
	cases := []struct {
		name string
		rule hybrid.Rule
		want string
		tag  string
		err  string // want an error with this
	}{
		{"any", hybrid.Rule{Action: ret, Origin: sg}, "counter return", "sgr r1,r2", ""},
		{"proto with ports", hybrid.Rule{Match: hybrid.Match{Proto: 6, DstPort: hybrid.PortRange{Min: 5000, Max: 5010}, SrcPort: hybrid.Port(22)}, Action: ret},
			"meta l4proto 6 th sport 22 th dport 5000-5010 counter return", "", ""},
		{"ports of a protocol without ports are left out, as iptables does", hybrid.Rule{Match: hybrid.Match{Proto: 4, DstPort: hybrid.Port(22)}, Action: ret},
			"meta l4proto 4 counter return", "", ""},
		{"icmp type and code", hybrid.Rule{Match: hybrid.Match{Proto: 1, ICMP: hybrid.ICMPMatch{Set: true, Type: 8, Code: 0}}, Action: ret},
			"meta l4proto 1 icmp type 8 icmp code 0 counter return", "", ""},
		{"icmp type 255 is any", hybrid.Rule{Match: hybrid.Match{Proto: 1, ICMP: hybrid.ICMPMatch{Set: true, Type: 255, Code: 3}}, Action: ret},
			"meta l4proto 1 counter return", "", ""},
		{"addresses, host bits cleared, /0 left out", hybrid.Rule{Match: hybrid.Match{Src: netip.MustParsePrefix("10.1.2.3/8"), Dst: netip.MustParsePrefix("0.0.0.0/0")}, Action: ret},
			"ip saddr 10.0.0.0/8 counter return", "", ""},
		{"remote group set, source", hybrid.Rule{Match: hybrid.Match{IPSet: "NIPv4g"}, Action: ret}, "ip saddr @NIPv4g counter return", "", ""},
		{"remote group set, destination", hybrid.Rule{Match: hybrid.Match{IPSet: "NIPv4g", IPSetDst: true}, Action: ret}, "ip daddr @NIPv4g counter return", "", ""},
		{"states", hybrid.Rule{Match: hybrid.Match{States: hybrid.StateEstablished | hybrid.StateRelated}, Action: ret, Origin: &hybrid.Origin{Kind: hybrid.OriginEstablished}},
			"ct state established,related counter return", "established", ""},
		{"mac", hybrid.Rule{Match: hybrid.Match{MACSource: mac}, Action: hybrid.Action{Kind: hybrid.Drop}}, "ether saddr fa:16:3e:00:00:01 counter drop", "", ""},
		{"jump to the fallback", hybrid.Rule{Action: hybrid.Action{Kind: hybrid.Jump, Chain: hybrid.ChainFallback}}, "counter jump sg-fallback", "", ""},
		{"physdev outside dispatch", hybrid.Rule{Match: hybrid.Match{PhysIn: "tapx"}, Action: ret}, "", "", "physdev"},
		{"a jump to a chain without a name", hybrid.Rule{Action: hybrid.Action{Kind: hybrid.Jump, Chain: "neutron-openvswi-x"}}, "", "", "no nftables chain"},
		{"a raw action in filter", hybrid.Rule{Action: hybrid.Action{Kind: hybrid.CTNoTrack}}, "", "", "outside the raw table"},
		{"an IPv6 address in the IPv4 table", hybrid.Rule{Match: hybrid.Match{Src: netip.MustParsePrefix("2001:db8::/32")}, Action: ret}, "", "", "wrong family"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &familyRender{fam: v4, names: map[string]string{hybrid.ChainFallback: ChainFallback}, spoofSet: map[string]bool{}}
			got, err := r.rule(&c.rule)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if line := ruleLine(t, got); line != c.want {
				t.Errorf("rule %q, want %q", line, c.want)
			}
			if got.Comment != c.tag {
				t.Errorf("tag %q, want %q", got.Comment, c.tag)
			}
		})
	}
}

// TestRenderRefusesForeignShapes: a ruleset that does not have the
// layout's shape is refused with a message, never rendered wrong.
func TestRenderRefusesForeignShapes(t *testing.T) {
	edit := func(chain string, f func(c *firewall.Chain)) func(rs *firewall.Ruleset) {
		return func(rs *firewall.Ruleset) {
			ft := rs.IPv4.Filter
			ft.Chains = slices.Clone(ft.Chains)
			found := false
			for i := range ft.Chains {
				if ft.Chains[i].Name == chain {
					f(&ft.Chains[i])
					found = true
				}
			}
			if !found {
				ft.Chains = append(ft.Chains, firewall.Chain{Name: chain})
				f(&ft.Chains[len(ft.Chains)-1])
			}
			rs.IPv4.Filter = ft
		}
	}
	cases := []struct {
		name   string
		change func(rs *firewall.Ruleset)
		err    string
	}{
		{"no ruleset", nil, "no ruleset"},
		{"rules without data", edit(hybrid.ChainSG, func(c *firewall.Chain) { c.SetSpecs(nil) }), "without their data"},
		{"an unknown port chain", edit("neutron-openvswi-izzzzzzzzzz", func(c *firewall.Chain) {}), "not a chain of a port"},
		{"a rule in local", edit(hybrid.ChainLocal, func(c *firewall.Chain) {
			c.Rules = []string{"-j ACCEPT"}
			c.SetSpecs([]*hybrid.Rule{{Action: hybrid.Action{Kind: hybrid.Accept}}})
		}), "the layout has none there"},
		{"a non-dispatch rule in sg-chain", edit(hybrid.ChainSG, func(c *firewall.Chain) {
			c.Rules = append([]string{"-p tcp -j ACCEPT"}, c.Rules...)
			c.SetSpecs(append([]*hybrid.Rule{{Match: hybrid.Match{Proto: 6}, Action: hybrid.Action{Kind: hybrid.Accept}}}, c.Specs()...))
		}), "not a dispatch rule"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rs *firewall.Ruleset
			if c.change != nil {
				cp := *scenarios(t)[0].rs
				rs = &cp
				c.change(rs)
			}
			_, err := Render(rs)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want one with %q", err, c.err)
			}
		})
	}
}

// TestSpoofFolding: a port's anti-spoofing chain becomes elements of the
// spoof set (prefixes merged per MAC, MAC-only as the whole family), and
// a chain of another shape is left a chain.
func TestSpoofFolding(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:01")
	mac2, _ := net.ParseMAC("fa:16:3e:00:00:02")
	ret := hybrid.Action{Kind: hybrid.Return}
	drop := &hybrid.Rule{Action: hybrid.Action{Kind: hybrid.Drop}}
	pair := func(m net.HardwareAddr, p string) *hybrid.Rule {
		r := &hybrid.Rule{Match: hybrid.Match{MACSource: m}, Action: ret}
		if p != "" {
			r.Match.Src = netip.MustParsePrefix(p)
		}
		return r
	}
	const id = "0123456789abcdef"
	br := hybrid.BridgeName(id)
	cases := []struct {
		name  string
		specs []*hybrid.Rule
		fold  bool
		want  []string
	}{
		{"pairs", []*hybrid.Rule{pair(mac, "10.0.0.0/24"), pair(mac, "10.0.0.5/32"), pair(mac2, "10.0.1.1/32"), drop}, true,
			[]string{br + " fa:16:3e:00:00:01 10.0.0.0/24", br + " fa:16:3e:00:00:02 10.0.1.1"}},
		{"MAC only", []*hybrid.Rule{pair(mac, ""), drop}, true, []string{br + " fa:16:3e:00:00:01 0.0.0.0/0"}},
		{"no final drop", []*hybrid.Rule{pair(mac, "10.0.0.1/32"), pair(mac, "10.0.0.2/32")}, false, nil},
		{"another match", []*hybrid.Rule{{Match: hybrid.Match{MACSource: mac, Proto: 6}, Action: ret}, drop}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &familyRender{fam: v4, spoof: map[spoofGroup][]nft.Interval{}}
			ch := firewall.Chain{Name: "s", Rules: make([]string, len(c.specs))}
			ch.SetSpecs(c.specs)
			if got := r.foldSpoof(id, ch); got != c.fold {
				t.Fatalf("folded %v, want %v", got, c.fold)
			}
			var got []string
			for g, ivs := range r.spoof {
				for _, iv := range nft.Merge(ivs) {
					got = append(got, g.bridge+" "+g.mac+" "+iv.String())
				}
			}
			slices.Sort(got)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("elements %q, want %q", got, c.want)
			}
		})
	}
}

// TestRejectedPort: a port the compiler rejects (a bad MAC) has no
// chains; its bridge's frames go to the drop chain, both directions.
func TestRejectedPort(t *testing.T) {
	sf, err := spec.Load(nil, filepath.Join("..", "testdata", "neutron", "sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := sf.CompileState("sample.json", "basic", false)
	if err != nil {
		t.Fatal(err)
	}
	bad := st.Ports[0]
	bad.ID = "0badbad0-0000-4000-8000-000000000001"
	bad.MAC = "fa:16:3e:zz:00:01"
	st.Ports = append(st.Ports, bad)
	rs, err := firewall.Compile(st)
	if err != nil {
		t.Fatal(err)
	}
	if !rs.IsRejected(bad.ID) {
		t.Fatalf("the port with a bad MAC was not rejected")
	}
	out, err := Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	script, err := nft.Script(out)
	if err != nil {
		t.Fatal(err)
	}
	br := hybrid.BridgeName(bad.ID)
	for _, want := range []string{
		`"` + br + `" . 0x0 : jump ` + ChainRejected,
		`"` + br + `" . 0x10000000 : jump ` + ChainRejected,
		`add rule ip moat ` + ChainRejected + ` counter drop`,
		`"` + hybrid.TapName(bad.ID) + `"`, // in vm_taps: its frames are marked
	} {
		if !strings.Contains(string(script), want) {
			t.Errorf("the rendering lacks %q", want)
		}
	}
	if strings.Contains(string(script), InChain(bad.ID)) {
		t.Errorf("the rejected port has chains")
	}
}
