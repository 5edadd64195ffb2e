package agentbench

import (
	"context"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/testenv"
)

// TestRunSmall runs the measurement at a tiny size so that CI notices when
// the benchmark (API, agent, syncers together) breaks.
func TestRunSmall(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, append(iptables.NFT.Binaries(), "ipset")...)
	res, err := Run(context.Background(), Options{Backend: iptables.NFT, Ports: 20, Changes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes != 3 || res.P50ms <= 0 || res.MaxMs < res.P50ms || res.RulesIPv4 < 20*20 {
		t.Fatalf("implausible result %+v", res)
	}
}
