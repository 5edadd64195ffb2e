package parity

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
)

// LoadScenario reads the case's scenario from the spec file next to the
// index (specDir).
func LoadScenario(specDir string, c Case) (*spec.Scenario, error) {
	path := filepath.Join(specDir, c.Spec)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	file, err := spec.Parse(f, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return file.Scenario(c.Scenario)
}

// CompileDumps compiles the state at each dump step of a scenario with one
// Compiler, carrying conntrack zones from one compile to the next as an
// agent does. compat selects Options.NeutronCompat.
func CompileDumps(sc *spec.Scenario, set map[string]any, compat bool) ([]*firewall.Ruleset, *firewall.Compiler, error) {
	dumps, err := sc.Dumps(set)
	if err != nil {
		return nil, nil, err
	}
	c := firewall.NewCompiler()
	var zones map[string]int
	var out []*firewall.Ruleset
	for _, d := range dumps {
		d.State.Options.NeutronCompat = compat
		d.State.Zones = zones
		rs, err := c.Compile(d.State)
		if err == nil {
			err = rs.RejectedError() // a left-out port would pass parity unseen
		}
		if err != nil {
			return nil, nil, fmt.Errorf("dump %s: %w", d.Label, err)
		}
		zones = rs.ZoneAssignments
		out = append(out, rs)
	}
	return out, c, nil
}
