package dataplane

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/moat-sg/moat/internal/metrics"
)

// TestTransactionsCounted: a run given stdin is a kernel transaction,
// counted by tool and outcome; a run without stdin (a read) is not.
func TestTransactionsCounted(t *testing.T) {
	ok := func() float64 { return testutil.ToFloat64(metrics.AgentTransactions.WithLabelValues("cat", "ok")) }
	bad := func() float64 { return testutil.ToFloat64(metrics.AgentTransactions.WithLabelValues("false", "error")) }
	ok0, bad0 := ok(), bad()
	ctx := context.Background()
	if out, err := (Host{}).Run(ctx, []byte("x"), "/bin/cat"); err != nil || string(out) != "x" {
		t.Fatalf("cat: %q %v", out, err)
	}
	if _, err := (Host{}).Run(ctx, nil, "cat", "/dev/null"); err != nil {
		t.Fatal(err)
	}
	if _, err := (Host{}).Run(ctx, []byte("x"), "false"); err == nil {
		t.Fatal("false succeeded")
	}
	if ok()-ok0 != 1 || bad()-bad0 != 1 {
		t.Errorf("counted ok %v error %v, want 1 and 1", ok()-ok0, bad()-bad0)
	}
}
