package firewall_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/hybrid"
)

var updateLogging = flag.Bool("update", false, "rewrite the logging golden files")

// TestWithLoggingGolden puts log rules on the ports of the reference
// scenarios and compares the chains (iptables-save lines) and the prefix
// index with testdata/logging/NAME.golden (go test -update rewrites them).
func TestWithLoggingGolden(t *testing.T) {
	for _, file := range []string{"sample.json", "edge.json"} {
		sf, err := spec.Load(nil, filepath.Join("testdata", "neutron", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range sf.Names() {
			st, _, err := sf.CompileState(file, name, false)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := firewall.Compile(st)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs.PortZones) == 0 {
				continue
			}
			t.Run(strings.TrimSuffix(file, ".json")+"-"+name, func(t *testing.T) {
				checkLogging(t, rs, filepath.Join("testdata", "logging", strings.TrimSuffix(file, ".json")+"-"+name+".golden"))
			})
		}
	}
}

func checkLogging(t *testing.T, rs *firewall.Ruleset, path string) {
	var ports []firewall.LogPort
	for i, z := range rs.PortZones {
		ports = append(ports, firewall.LogPort{PortID: z.PortID, Accept: i != 1, Drop: i <= 1})
	}
	before := dump(rs)
	logged, index := firewall.WithLogging(rs, ports, firewall.LogOptions{Group: 3, Rate: 100, Burst: 25})
	if dump(rs) != before {
		t.Fatal("WithLogging changed its input")
	}
	// The log rules decide nothing: without them the chains are the
	// compiled ones, rule for rule.
	stripped := *logged
	for _, tb := range []*firewall.Table{&stripped.IPv4.Filter, &stripped.IPv6.Filter} {
		tb.Chains = slices.Clone(tb.Chains)
		for i, c := range tb.Chains {
			var keep []string
			for j, r := range c.Rules {
				if c.Specs()[j].Action.Kind != hybrid.Log {
					keep = append(keep, r)
				} else if !strings.Contains(r, "-j NFLOG --nflog-prefix moat_") {
					t.Errorf("log rule %q", r)
				}
			}
			tb.Chains[i] = firewall.Chain{Name: c.Name, Rules: keep}
		}
	}
	if dump(&stripped) != before {
		t.Error("the logged chains without their log rules are not the compiled ones")
	}
	var b strings.Builder
	b.WriteString(dump(logged))
	for _, p := range slices.Sorted(maps.Keys(index)) {
		e := index[p]
		fmt.Fprintf(&b, "%s %s %s %s %s %s\n", p, e.Direction, e.Ethertype, e.Verdict, e.Origin, strings.Join(e.Rules, ","))
		if len(p) > 63 {
			t.Errorf("prefix %q is longer than NFLOG takes", p)
		}
	}
	got := b.String()
	if *updateLogging {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("differs from %s (go test -update rewrites it); got:\n%s", path, got)
	}
}

// dump is the filter chains of both families as iptables-save lines.
func dump(rs *firewall.Ruleset) string {
	var b strings.Builder
	for _, tb := range []*firewall.Table{&rs.IPv4.Filter, &rs.IPv6.Filter} {
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				fmt.Fprintf(&b, "-A %s %s\n", c.Name, r)
			}
		}
	}
	return b.String()
}

// TestWithLoggingRefusesOddPortIDs: a port id that is not a UUID's
// characters never reaches a prefix.
func TestWithLoggingRefusesOddPortIDs(t *testing.T) {
	rs := &firewall.Ruleset{}
	_, index := firewall.WithLogging(rs, []firewall.LogPort{{PortID: `x" -j ACCEPT`, Accept: true, Drop: true}}, firewall.LogOptions{Group: 1, Rate: 1, Burst: 1})
	if len(index) != 0 {
		t.Errorf("index %v", index)
	}
}
