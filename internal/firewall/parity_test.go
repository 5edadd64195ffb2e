package firewall_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/parity"
	"github.com/moat-sg/moat/internal/firewall/spec"
)

// corpora are the golden sets rendered by the real Neutron 21 driver.
var corpora = []string{
	"testdata/neutron", // the reference harness's own scenarios
	"testdata/random",  // generated ones, see parity/gencorpus
}

// TestNeutronCompatParity compiles every golden case with NeutronCompat and
// requires exactly what Neutron installed: every table of both families
// byte for byte, and every ipset. Nothing is normalised.
func TestNeutronCompatParity(t *testing.T) {
	forEachCase(t, checkCompat)
}

func checkCompat(t *testing.T, dir string, c parity.Case) {
	_, want, got := compileCase(t, dir, c, true)
	for i := range want {
		if diffs := parity.Compare(got[i], want[i]); len(diffs) > 0 {
			t.Errorf("dump %s:\n%s", want[i].Label, strings.Join(diffs, "\n"))
		}
	}
}

// compileCase loads a case's scenario and golden dumps and compiles the
// scenario's dumps (compat: with NeutronCompat), one per golden dump.
func compileCase(t *testing.T, dir string, c parity.Case, compat bool) (*spec.Scenario, []parity.Dump, []*firewall.Ruleset) {
	t.Helper()
	sc, err := parity.LoadScenario(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	want, err := parity.ReadDumps(filepath.Join(dir, "golden", c.Dir))
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := parity.CompileDumps(sc, c.Set, compat)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d dumps compiled, golden has %d", len(got), len(want))
	}
	return sc, want, got
}

func forEachCase(t *testing.T, fn func(t *testing.T, dir string, c parity.Case)) {
	for _, dir := range corpora {
		ix, err := parity.LoadIndex(filepath.Join(dir, "cases.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ix.Cases) == 0 {
			t.Fatalf("%s: no cases", dir)
		}
		for _, c := range ix.Cases {
			t.Run(filepath.Base(dir)+"/"+c.Dir, func(t *testing.T) { fn(t, dir, c) })
		}
	}
}
