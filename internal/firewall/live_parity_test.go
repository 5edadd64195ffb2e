package firewall_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/firewall/parity"
	"github.com/moat-sg/moat/internal/testenv"
)

// TestLiveNeutronParity generates fresh random scenarios, renders them with
// the real Neutron 21 driver and compares, as the corpus tests do. It runs
// only with MOAT_NEUTRON_PARITY=1, as root, where Debian's python3-neutron
// and the reference harness are installed. MOAT_NEUTRON_SEED repeats a run,
// MOAT_NEUTRON_N sets the number of scenarios (default 12).
func TestLiveNeutronParity(t *testing.T) {
	testenv.OptIn(t, "MOAT_NEUTRON_PARITY", "=1 to compare with the real Neutron driver (root, /usr/bin/python3 with python3-neutron, the reference harness outside the project)")
	// Asked for explicitly: a driver that cannot run is a failure.
	if err := parity.Available(); err != nil {
		t.Fatalf("MOAT_NEUTRON_PARITY is set but the real Neutron driver cannot run here: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MOAT_NEUTRON_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("MOAT_NEUTRON_SEED: %v", err)
		}
	}
	n := 12
	if s := os.Getenv("MOAT_NEUTRON_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("MOAT_NEUTRON_N: bad value %q", s)
		}
	}
	t.Logf("seed %d, %d scenarios (repeat with MOAT_NEUTRON_SEED=%d)", seed, n, seed)

	ctx := context.Background()
	scs, err := parity.GenerateScenarios(ctx, parity.CorpusConfig{Seed: seed, N: n, FixesEvery: 2, StepsEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := parity.WriteCorpus(ctx, dir, "live", scs); err != nil {
		t.Fatal(err)
	}
	ix, err := parity.LoadIndex(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ix.Cases {
		t.Run(c.Dir, func(t *testing.T) {
			t.Run("compat", func(t *testing.T) { checkCompat(t, dir, c) })
			t.Run("fixed", func(t *testing.T) { checkFixed(t, dir, c) })
		})
	}
}
