package nftables

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestCompileRefuses: every way a Ruleset could carry something nft would
// misread is refused with an error naming the object.
func TestCompileRefuses(t *testing.T) {
	chain := func(rules ...Rule) *Ruleset {
		return &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: "c", Rules: rules}, {Name: "d"}},
			Sets: []*Set{{Name: "s", Key: []DataType{TypeIPv4Addr}}}}}}
	}
	set := func(s *Set) *Ruleset {
		return &Ruleset{Tables: []*Table{{ID: IPTable, Sets: []*Set{s}, Chains: []*Chain{{Name: "c"}, {Name: "b", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.ForwardHook, Priority: "0"}}}}}}
	}
	cases := []struct {
		name string
		rs   *Ruleset
		want string
	}{
		{"quote in a name", &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: `i-x"; flush ruleset`}}}}}, `chain name "i-x\"; flush ruleset"`},
		{"keyword name", &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: "fwd"}}}}}, `chain name "fwd" is an nft keyword`},
		{"keyword set name", &Ruleset{Tables: []*Table{{ID: IPTable, Sets: []*Set{{Name: "notrack", Key: []DataType{TypeIfName}}}}}}, `set name "notrack" is an nft keyword`},
		{"digit first", &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: "1abc"}}}}}, "is not allowed"},
		{"name too long", &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: "a" + strings.Repeat("b", 255)}}}}}, "longer than 255 bytes"},
		{"duplicate chain", &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: "c"}, {Name: "c"}}}}}, "chain c: given twice"},
		{"semicolon in syntax", chain(R("", Kw("accept; flush ruleset"))), `character ';' is not allowed`},
		{"newline in syntax", chain(R("", Kw("accept\nflush ruleset"))), `character '\n' is not allowed`},
		{"brace in syntax", chain(R("", Kw("tcp dport { 1, 2 }"))), `character '{' is not allowed`},
		{"hash in syntax", chain(R("", Kw("accept #"))), `character '#' is not allowed`},
		{"at in syntax", chain(R("", Kw("ip saddr @s"))), `character '@' is not allowed`},
		{"jump in syntax", chain(R("", Kw("jump d"))), `"jump" is not allowed here (use Jump)`},
		{"comment in syntax", chain(R("", Kw("accept comment x"))), `"comment" is not allowed here`},
		{"double space", chain(R("", Kw("ip  saddr"))), "empty word"},
		{"no terms", chain(R("x")), "rule 1: no terms"},
		{"quote in ifname", chain(R("", Kw("iifname"), IfName(`a"b`), Accept)), `interface name "a\"b"`},
		{"star in ifname", chain(R("", Kw("iifname"), IfName("qbr*"), Accept)), `character '*' is not allowed`},
		{"long ifname", chain(R("", Kw("iifname"), IfName("0123456789abcdef"), Accept)), "want 1 to 15 bytes"},
		{"quote in string", chain(R("", Kw("log prefix"), Str(`x" accept`))), `character '"' is not allowed`},
		{"jump to a missing chain", chain(R("", Jump("nope"))), "chain c rule 1: no chain nope"},
		{"jump to a base chain", set(&Set{Name: "m", Key: []DataType{TypeIfName}, Value: TypeVerdict, Elements: []Element{M(Jump("b"), IfName("x"))}}), "chain b is a base chain"},
		{"missing set", chain(R("", Kw("ip saddr"), Ref("nope"), Accept)), "no set or map nope"},
		{"element type", set(&Set{Name: "s", Key: []DataType{TypeIPv4Addr}, Elements: []Element{E(IfName("x"))}}), `"x" is not a value of type ipv4_addr`},
		{"v6 in a v4 set", set(&Set{Name: "s", Key: []DataType{TypeIPv4Addr}, Elements: []Element{E(Addr(mustAddr("::1")))}}), "not a value of type ipv4_addr"},
		{"prefix without interval", set(&Set{Name: "s", Key: []DataType{TypeIPv4Addr}, Elements: []Element{E(Prefix(mustPrefix("10.0.0.0/8")))}}), "needs an interval set"},
		{"host bits", set(&Set{Name: "s", Key: []DataType{TypeIPv4Addr}, Interval: true, Elements: []Element{E(Prefix(mustPrefix("10.0.0.1/8")))}}), "host bits set"},
		{"overlap", set(&Set{Name: "s", Key: []DataType{TypeIPv4Addr}, Interval: true, Elements: []Element{E(Prefix(mustPrefix("10.0.0.0/8"))), E(Addr(mustAddr("10.1.2.3")))}}), "elements 10.0.0.0/8 and 10.1.2.3 overlap"},
		{"overlap in a concatenation", set(&Set{Name: "s", Key: []DataType{TypeIfName, TypeIPv4Addr}, Interval: true, Elements: []Element{E(IfName("a"), Prefix(mustPrefix("10.0.0.0/8"))), E(IfName("a"), Addr(mustAddr("10.1.2.3")))}}), "overlap"},
		{"range before the last field", set(&Set{Name: "s", Key: []DataType{TypeIPv4Addr, TypeIfName}, Interval: true, Elements: []Element{E(Prefix(mustPrefix("10.0.0.0/8")), IfName("a"))}}), "only the last field"},
		{"bad MAC", set(&Set{Name: "s", Key: []DataType{TypeEtherAddr}, Elements: []Element{E(ParseMAC("fa:16:3e:zz:00:01"))}}), `bad MAC address "fa:16:3e:zz:00:01"`},
		{"zone too big", set(&Set{Name: "m", Key: []DataType{TypeIfName}, Value: TypeCTZone, Elements: []Element{M(Num(70000), IfName("a"))}}), "not a value of type integer"},
		{"map element without value", set(&Set{Name: "m", Key: []DataType{TypeIfName}, Value: TypeVerdict, Elements: []Element{E(IfName("a"))}}), "no value"},
		{"conflicting duplicates", set(&Set{Name: "m", Key: []DataType{TypeIfName}, Value: TypeVerdict, Elements: []Element{M(Accept, IfName("a")), M(Drop, IfName("a"))}}), "given twice with different values"},
		{"key arity", set(&Set{Name: "s", Key: []DataType{TypeIfName, TypeMark}, Elements: []Element{E(IfName("a"))}}), "1 key fields, the set has 2"},
		{"value as key", set(&Set{Name: "s", Key: []DataType{TypeVerdict}}), "not a key type"},
		{"bad priority", &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: "b", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.ForwardHook, Priority: "0; flush ruleset"}}}}}}, "priority"},
		{"bad hook", &Ruleset{Tables: []*Table{{ID: IPTable, Chains: []*Chain{{Name: "b", Base: &BaseChain{Type: knftables.FilterType, Hook: "forward; flush ruleset", Priority: "0"}}}}}}, "hook"},
		{"not owned", &Ruleset{Tables: []*Table{{ID: TableID{knftables.InetFamily, "moat"}}}}, "not one of the syncer's tables"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compile(c.rs, MoatTables())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("compile: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestCleanComment: comments cannot end their quotes, keep their
// length limit with the fingerprint, and keep what is printable.
func TestCleanComment(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`sgr 1`, `sgr 1`},
		{`a"b\c`, `a_b_c`},
		{"tab\there\nnl", "tab_here_nl"},
		{"ünï", "ünï"},
		{"bad\xffutf8", "bad_utf8"},
		{strings.Repeat("é", 100), strings.Repeat("é", 57)}, // 114 bytes: 128 less " #" and 12 digits
	} {
		got := kernelComment(c.in, "0123456789ab")
		if want := c.want + " #0123456789ab"; got != want {
			t.Errorf("kernelComment(%q) = %q, want %q", c.in, got, want)
		}
		if len(got) > maxCommentLen {
			t.Errorf("kernelComment(%q) is %d bytes", c.in, len(got))
		}
		if o := Origin(got); o != c.want {
			t.Errorf("Origin(%q) = %q, want %q", got, o, c.want)
		}
	}
	if got := kernelComment("", "0123456789ab"); got != "#0123456789ab" || Origin(got) != "" {
		t.Errorf("empty comment: %q, origin %q", got, Origin(got))
	}
	for _, c := range []string{"sgr 1", "x #123", "x #0123456789aX", "x#0123456789ab"} {
		if o, fp := splitComment(c); o != c || fp != "" {
			t.Errorf("splitComment(%q) = %q, %q: a comment without a fingerprint is all origin", c, o, fp)
		}
	}
}

// TestReadBack parses what nft 1.0.6 listed for the two-port layout
// (captured from the kernel into testdata/read) into exactly the state the
// syncer expects after committing it.
func TestReadBack(t *testing.T) {
	want := mustCompile(t, twoPorts().ruleset())
	for _, c := range []struct {
		id   TableID
		file string
	}{{IPTable, "two-ports-ip.json"}, {BridgeTable, "two-ports-bridge.json"}} {
		data, err := os.ReadFile(filepath.Join("testdata", "read", c.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseTable(c.id, data)
		if err != nil {
			t.Fatal(err)
		}
		if got.replace {
			t.Fatalf("%s: not understood: %s", c.id, got.why)
		}
		if g, w := describeState(got), describeState(stateOf(want[c.id])); g != w {
			t.Errorf("%s read back as\n%s\nwant\n%s", c.id, g, w)
		}
	}
	data, err := os.ReadFile(filepath.Join("testdata", "read", "tables.json"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := parseTableNames(data)
	if err != nil || !names[IPTable] || !names[BridgeTable] || names[IP6Table] {
		t.Errorf("tables: %v, %v", names, err)
	}
}

// TestReadNotUnderstood: objects the syncer never writes, names and
// elements it cannot render make the table one to replace, not an error.
func TestReadNotUnderstood(t *testing.T) {
	head := `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "ip", "name": "moat", "handle": 1}}, `
	for _, c := range []struct{ obj, why string }{
		{`{"counter": {"family": "ip", "table": "moat", "name": "c"}}`, "it holds a counter"},
		{`{"chain": {"family": "ip", "table": "moat", "name": "fwd x"}}`, `chain name "fwd x"`},
		{`{"map": {"family": "ip", "table": "moat", "name": "m", "type": "ifname", "map": "integer", "elem": [["q*", 1]]}}`, "map m: element"},
		{`{"set": {"family": "ip", "table": "moat", "name": "s", "type": "ipv4_addr", "timeout": 30}}`, "timeout"},
		{`{"set": {"family": "ip", "table": "moat", "name": "s", "type": "cgroupsv2"}}`, "key type cgroupsv2"},
	} {
		st, err := parseTable(IPTable, []byte(head+c.obj+"]}"))
		if err != nil {
			t.Fatal(err)
		}
		if !st.replace || !strings.Contains(st.why, c.why) {
			t.Errorf("%s: replace %v (%s), want a replace because of %q", c.obj, st.replace, st.why, c.why)
		}
	}
	if _, err := parseTable(IPTable, []byte(`{"nftables": []}`)); err == nil {
		t.Error("a listing without the table parsed")
	}
	if _, err := parseTable(IPTable, []byte(`not json`)); err == nil {
		t.Error("bad JSON parsed")
	}
}

// TestChainCache: a regular chain given again in the same Rules slice is
// not compiled again; a new slice is, even with the same first rule.
func TestChainCache(t *testing.T) {
	var cc chainCache
	l := twoPorts()
	rs := l.ruleset()
	first, err := compileCached(rs, MoatTables(), &cc)
	if err != nil {
		t.Fatal(err)
	}
	again, err := compileCached(rs, MoatTables(), &cc)
	if err != nil {
		t.Fatal(err)
	}
	name := "i-" + portA
	if first[IPTable].chains[name] != again[IPTable].chains[name] {
		t.Errorf("chain %s compiled again from the same slice", name)
	}
	// The same chain in a new slice with its last rule changed.
	var c *Chain
	for _, x := range rs.Tables[1].Chains {
		if x.Name == name {
			c = x
		}
	}
	rules := append([]Rule(nil), c.Rules...)
	rules[len(rules)-1] = R("fallback", Kw("counter"), Drop)
	c.Rules = rules
	changed, err := compileCached(rs, MoatTables(), &cc)
	if err != nil {
		t.Fatal(err)
	}
	wc := changed[IPTable].chains[name]
	if wc == again[IPTable].chains[name] || wc.rules[len(wc.rules)-1].body != "counter drop" {
		t.Errorf("the changed chain was not compiled again: last rule %q", wc.rules[len(wc.rules)-1].body)
	}
	// Uncached compiles agree with cached ones.
	plain, err := compile(rs, MoatTables())
	if err != nil {
		t.Fatal(err)
	}
	for n, c := range plain[IPTable].chains {
		if !slices.Equal(c.fps, changed[IPTable].chains[n].fps) {
			t.Errorf("chain %s: cached and uncached compiles differ", n)
		}
	}
}
