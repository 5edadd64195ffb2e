package agentbench

import (
	"context"
	"testing"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/testenv"
)

// TestRunSmall runs the measurement at a tiny size on an iptables backend
// and on nftables, with the agent on the watch stream (and once reading
// the store), so that CI notices when the benchmark (API, watch, agent,
// syncers together) breaks.
func TestRunSmall(t *testing.T) {
	testenv.RequireNetns(t)
	for _, c := range []struct {
		backend agent.Backend
		feed    string
	}{{agent.IPTablesNFT, FeedWatch}, {agent.NFTablesLayout, FeedWatch}, {agent.IPTablesNFT, FeedStore}} {
		t.Run(string(c.backend)+"/"+c.feed, func(t *testing.T) {
			testenv.RequireTools(t, c.backend.Binaries()...)
			res, err := Run(context.Background(), Options{Backend: c.backend, Ports: 20, Changes: 3, Feed: c.feed})
			if err != nil {
				t.Fatal(err)
			}
			if res.Changes != 3 || res.Feed != c.feed || res.P50ms <= 0 || res.MaxMs < res.P50ms || res.RulesIPv4 < 20*10 {
				t.Fatalf("implausible result %+v", res)
			}
			// The halves are measured on the same changes: neither
			// exceeds the slowest whole.
			if res.SyncP50ms <= 0 || res.SyncP99ms > res.MaxMs || res.ToSyncP99ms > res.MaxMs {
				t.Fatalf("implausible halves %+v", res)
			}
			// The bare restores found the last rule in the ingress chain of
			// every port of its group (20 ports, 10 groups).
			if c.backend != agent.NFTablesLayout && (res.BareChains != 2 || res.BareEmptyMs <= 0 || res.BareOneMs <= 0 || res.BareChangeMs <= 0) {
				t.Fatalf("implausible bare restores %+v", res)
			}
		})
	}
}
