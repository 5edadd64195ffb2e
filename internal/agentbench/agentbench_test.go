package agentbench

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
)

// TestRunSmall runs the measurement at a tiny size so that CI notices when
// the benchmark (API, agent, syncers together) breaks.
func TestRunSmall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a scratch network namespace")
	}
	for _, bin := range append(iptables.NFT.Binaries(), "ipset") {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	res, err := Run(context.Background(), Options{Backend: iptables.NFT, Ports: 20, Changes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes != 3 || res.P50ms <= 0 || res.MaxMs < res.P50ms || res.RulesIPv4 < 20*20 {
		t.Fatalf("implausible result %+v", res)
	}
}
