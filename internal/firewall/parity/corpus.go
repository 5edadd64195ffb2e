package parity

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/firewall/specgen"
)

// CorpusConfig describes a generated corpus.
type CorpusConfig struct {
	Seed uint64 // first seed; scenario i uses Seed+i
	N    int
	// Every FixesEvery-th scenario may contain the inputs moat renders
	// differently on purpose, every StepsEvery-th has steps after the first
	// dump.
	FixesEvery int
	StepsEvery int
}

// GenerateScenarios returns the corpus's scenarios, with each local port's
// groups in the order Neutron uses (which needs the reference harness).
func GenerateScenarios(ctx context.Context, cfg CorpusConfig) ([]*spec.Scenario, error) {
	var scs []*spec.Scenario
	for i := 0; i < cfg.N; i++ {
		seed := cfg.Seed + uint64(i)
		gc := specgen.Config{
			Fixes: cfg.FixesEvery > 0 && i%cfg.FixesEvery == cfg.FixesEvery-1,
			Steps: cfg.StepsEvery > 0 && i%cfg.StepsEvery == cfg.StepsEvery-1,
		}
		sc := specgen.Generate(seed, fmt.Sprintf("s%d", seed), gc)
		if err := specgen.Validate(sc); err != nil {
			return nil, fmt.Errorf("seed %d generated an invalid scenario: %w", seed, err)
		}
		scs = append(scs, sc)
	}
	if err := OrderGroupsLikeNeutron(ctx, scs); err != nil {
		return nil, err
	}
	return scs, nil
}

var goldenFile = regexp.MustCompile(`^\d\d-.+\.(iptables-save|ip6tables-save|ipset)\.txt$`)

// WriteCorpus renders scenarios with the real Neutron driver and writes
// dir/specs.json, dir/cases.json and dir/golden/<scenario>/.
func WriteCorpus(ctx context.Context, dir, source string, scs []*spec.Scenario) error {
	if err := os.MkdirAll(filepath.Join(dir, "golden"), 0o755); err != nil {
		return err
	}
	specPath := filepath.Join(dir, "specs.json")
	b, err := json.MarshalIndent(map[string]any{"scenarios": scs}, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(specPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "moat-corpus-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := Render(ctx, specPath, tmp); err != nil {
		return err
	}
	ix := Index{Source: source}
	for _, sc := range scs {
		src, dst := filepath.Join(tmp, sc.Name), filepath.Join(dir, "golden", sc.Name)
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !goldenFile.MatchString(e.Name()) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
				return err
			}
		}
		ix.Cases = append(ix.Cases, Case{Dir: sc.Name, Spec: "specs.json", Scenario: sc.Name})
	}
	b, err = json.MarshalIndent(ix, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cases.json"), append(b, '\n'), 0o644)
}
