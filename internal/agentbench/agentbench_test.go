package agentbench

import (
	"context"
	"testing"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/testenv"
)

// TestRunSmall runs the measurement at a tiny size on an iptables backend
// and on nftables, so that CI notices when the benchmark (API, agent,
// syncers together) breaks.
func TestRunSmall(t *testing.T) {
	testenv.RequireNetns(t)
	for _, b := range []agent.Backend{agent.IPTablesNFT, agent.NFTablesLayout} {
		t.Run(string(b), func(t *testing.T) {
			testenv.RequireTools(t, b.Binaries()...)
			res, err := Run(context.Background(), Options{Backend: b, Ports: 20, Changes: 3})
			if err != nil {
				t.Fatal(err)
			}
			if res.Changes != 3 || res.P50ms <= 0 || res.MaxMs < res.P50ms || res.RulesIPv4 < 20*10 {
				t.Fatalf("implausible result %+v", res)
			}
		})
	}
}
