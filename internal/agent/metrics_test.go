package agent

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/moat-sg/moat/internal/metrics"
	"github.com/moat-sg/moat/internal/store"
)

// A sync sets the agent's gauges from what it enforced; a failed apply
// counts as an error.
func TestSyncMetrics(t *testing.T) {
	a, feed, rules, _, _, _ := newFixture(t)
	ctx := context.Background()
	if err := a.recover(ctx); err != nil {
		t.Fatal(err)
	}
	feed.update(func(s *store.HostSnapshot) {})
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want := float64(feed.snap.Revision)
	if got := testutil.ToFloat64(metrics.AgentEnforcedRevision); got != want {
		t.Errorf("enforced revision %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(metrics.AgentPorts.WithLabelValues("enforced")); got != 1 {
		t.Errorf("enforced ports %v, want 1", got)
	}
	if got := testutil.ToFloat64(metrics.AgentChains); got < 3 {
		t.Errorf("chains %v, want the port's chains and more", got)
	}
	if got := testutil.ToFloat64(metrics.AgentRules); got < 10 {
		t.Errorf("rules %v", got)
	}
	if got := testutil.ToFloat64(metrics.AgentSets); got != 1 {
		t.Errorf("sets %v, want the remote group's", got)
	}
	errs := testutil.ToFloat64(metrics.AgentApplyErrors)
	rules.fail = 1
	feed.update(func(s *store.HostSnapshot) {})
	if err := a.Sync(ctx); err == nil {
		t.Fatal("Sync with a failing apply succeeded")
	}
	if got := testutil.ToFloat64(metrics.AgentApplyErrors); got != errs+1 {
		t.Errorf("apply errors %v, want %v", got, errs+1)
	}
	if got := testutil.ToFloat64(metrics.AgentEnforcedRevision); got != want {
		t.Errorf("after a failed apply the enforced revision is %v, want still %v", got, want)
	}
}
