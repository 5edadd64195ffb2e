package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/trace"
)

// The seeds of both targets are the reference scenario files plus
// testdata/fuzz/<target>.
func addSpecSeeds(f *testing.F) {
	for _, name := range []string{"sample.json", "edge.json"} {
		b, err := os.ReadFile(filepath.Join(refDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"name":"x","security_groups":[{"id":"g","rules":[{"direction":"ingress","protocol":"icmp","port_range_min":255}]}],"ports":[{"id":"p","mac_address":"fa:16:3e:00:00:01","fixed_ips":["2001:db8::1"],"security_groups":["g"],"allowed_address_pairs":[{"ip_address":"::/0"}]}]}`))
}

// FuzzParse feeds arbitrary bytes to the spec parser: an error or a file,
// never a panic, and a file that, written back as JSON, parses to the same
// file (the JSON is a fixed point after one write: the first write may
// normalise, e.g. invalid UTF-8 or {"options": {}}).
func FuzzParse(f *testing.F) {
	addSpecSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		if len(file.Scenarios) == 0 && !bytes.Contains(data, []byte("scenarios")) {
			t.Fatalf("a single-scenario file gave no scenario: %q", data)
		}
		for i, sc := range file.Scenarios {
			if sc == nil || sc.Name == "" {
				t.Fatalf("scenario %d: %+v: nil or unnamed", i, sc)
			}
		}
		first := writeSpec(t, file)
		again, err := Parse(bytes.NewReader(first), "other")
		if err != nil {
			t.Fatalf("parsing what was written: %v\ninput: %q\nwritten: %s", err, data, first)
		}
		if second := writeSpec(t, again); !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the file:\nfirst  %s\nsecond %s\ninput: %q", first, second, data)
		}
	})
}

func writeSpec(t *testing.T, file *File) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"scenarios": file.Scenarios})
	if err != nil {
		t.Fatalf("write the spec back: %v", err)
	}
	return b
}

// FuzzCompile feeds arbitrary specs through the loader and the compiler:
// bad input gives an error, never a panic, and whatever the compiler
// accepts renders to iptables-save and ipset save text that says exactly
// what the ruleset says: each rule one line of its own chain, each set
// with its members. A spec's ids become chain names, set names and
// comments, so this is where an id that breaks out of its rule shows.
func FuzzCompile(f *testing.F) {
	addSpecSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for _, sc := range file.Scenarios {
			for _, compat := range []bool{false, true} {
				st, err := sc.HostState(nil)
				if err != nil {
					continue
				}
				st.Options.NeutronCompat = compat
				rs, err := firewall.Compile(st)
				if err != nil {
					continue
				}
				checkRendered(t, rs)
			}
		}
	})
}

// checkRendered parses the rendered ruleset with the trace parsers and
// compares it with the ruleset.
func checkRendered(t *testing.T, rs *firewall.Ruleset) {
	t.Helper()
	for _, fam := range []struct {
		name   string
		tables *firewall.Tables
		v6     bool
	}{{"IPv4", &rs.IPv4, false}, {"IPv6", &rs.IPv6, true}} {
		var b strings.Builder
		if err := firewall.WriteSave(&b, &fam.tables.Raw, &fam.tables.Filter); err != nil {
			t.Fatal(err)
		}
		dump, err := trace.ParseSaveString(b.String(), fam.v6)
		if err != nil {
			t.Fatalf("%s: the rendered rules do not parse: %v\n%s", fam.name, err, b.String())
		}
		for _, tb := range []*firewall.Table{&fam.tables.Raw, &fam.tables.Filter} {
			compiled := map[string]bool{}
			for _, c := range append(append([]firewall.Chain(nil), tb.Builtins...), tb.Chains...) {
				compiled[c.Name] = true
				got := dump.Table(tb.Name).Chain(c.Name)
				if got == nil {
					t.Fatalf("%s %s: chain %q is not in the rendered rules:\n%s", fam.name, tb.Name, c.Name, b.String())
				}
				if len(got.Rules) != len(c.Rules) {
					t.Fatalf("%s %s: chain %q renders to %d rules, has %d:\n%s", fam.name, tb.Name, c.Name, len(got.Rules), len(c.Rules), b.String())
				}
				for i, r := range got.Rules {
					if r.Text != c.Rules[i] {
						t.Fatalf("%s %s: rule %d of %q renders as %q, is %q", fam.name, tb.Name, i+1, c.Name, r.Text, c.Rules[i])
					}
				}
				// Each rule as data renders as its text and says where it
				// came from.
				if len(c.Specs()) != len(c.Rules) {
					t.Fatalf("%s %s: chain %q has %d specs for %d rules", fam.name, tb.Name, c.Name, len(c.Specs()), len(c.Rules))
				}
				for i, s := range c.Specs() {
					if s == nil || s.Origin == nil || s.Iptables() != c.Rules[i] {
						t.Fatalf("%s %s: rule %d of %q is %q, its spec %+v", fam.name, tb.Name, i+1, c.Name, c.Rules[i], s)
					}
				}
			}
			// Nothing else: only the built-in chains the ruleset leaves
			// alone, which the parser adds empty.
			for _, c := range dump.Table(tb.Name).Chains {
				if !compiled[c.Name] && (!c.Builtin() || len(c.Rules) > 0) {
					t.Fatalf("%s %s: the rendered rules hold chain %q, which the ruleset does not:\n%s", fam.name, tb.Name, c.Name, b.String())
				}
			}
		}
	}
	var b strings.Builder
	if err := firewall.WriteIPSetSave(&b, rs.IPSets); err != nil {
		t.Fatal(err)
	}
	sets, err := trace.ParseIPSets(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("the rendered ipsets do not parse: %v\n%s", err, b.String())
	}
	if len(sets) != len(rs.IPSets) {
		t.Fatalf("%d ipsets rendered, want %d:\n%s", len(sets), len(rs.IPSets), b.String())
	}
	for _, s := range rs.IPSets {
		got := sets[s.Name]
		if got == nil || got.Family != s.Family || strings.Join(got.Members, ",") != strings.Join(s.Members, ",") {
			t.Fatalf("ipset %s renders as %+v, is %+v", s.Name, got, s)
		}
	}
}
