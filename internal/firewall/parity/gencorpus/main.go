// Command gencorpus regenerates the firewall compiler's random parity
// corpus: it generates scenarios from fixed seeds, renders them with the
// real Neutron 21 driver (the reference harness's render.py, as root) and
// writes specs, goldens and an index. Run it with go generate in
// internal/firewall, or:
//
//	go run ./internal/firewall/parity/gencorpus -out internal/firewall/testdata/random
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/moat-sg/moat/internal/firewall/parity"
)

func main() {
	var cfg parity.CorpusConfig
	out := flag.String("out", "testdata/random", "corpus directory")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of the first scenario")
	flag.IntVar(&cfg.N, "n", 48, "number of scenarios")
	flag.IntVar(&cfg.FixesEvery, "fixes-every", 2, "every k-th scenario may use inputs moat deliberately renders unlike Neutron")
	flag.IntVar(&cfg.StepsEvery, "steps-every", 4, "every k-th scenario has steps after the first dump")
	flag.Parse()
	if err := run(*out, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus:", err)
		os.Exit(1)
	}
}

func run(out string, cfg parity.CorpusConfig) error {
	if err := parity.Available(); err != nil {
		return err
	}
	ctx := context.Background()
	scs, err := parity.GenerateScenarios(ctx, cfg)
	if err != nil {
		return err
	}
	source := fmt.Sprintf("go run ./internal/firewall/parity/gencorpus -seed %d -n %d -fixes-every %d -steps-every %d; rendered by %s/render.py --backend legacy",
		cfg.Seed, cfg.N, cfg.FixesEvery, cfg.StepsEvery, strings.TrimSuffix(parity.RefDir(), "/"))
	if err := parity.WriteCorpus(ctx, out, source, scs); err != nil {
		return err
	}
	fmt.Printf("wrote %d scenarios to %s\n", len(scs), out)
	return nil
}
