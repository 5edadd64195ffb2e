package apibench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(lat, c.p); got != c.want {
			t.Errorf("Percentile(1..100ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if lat[0] != 100*time.Millisecond {
		t.Error("Percentile sorted its argument in place")
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v", got)
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("Percentile of one = %v", got)
	}
}

func TestRuleSpecDistinct(t *testing.T) {
	const groups = 3
	seen := map[[3]any]bool{}
	for _, i := range []int{0, 1, 2, 3, 65535*groups - 1, 65535 * groups, 65535*groups + 1, maxRulesPerGroup*groups - 1} {
		g, proto, port := ruleSpec(i, groups)
		k := [3]any{g, proto, port}
		if seen[k] {
			t.Errorf("rule %d repeats %v", i, k)
		}
		seen[k] = true
		if port < 1 || port > 65535 || g < 0 || g >= groups {
			t.Errorf("rule %d = %v", i, k)
		}
	}
	if g, proto, port := ruleSpec(65535*groups, groups); g != 0 || proto != "udp" || port != 1 {
		t.Errorf("rule 65535*groups = %d %s %d, want group 0 udp port 1", g, proto, port)
	}
}

// TestRunTiny runs the whole bench with tiny numbers against an in-process
// moat, bulk fill included: every case must report and nothing may fail.
func TestRunTiny(t *testing.T) {
	ctx := context.Background()
	srv, err := StartServer(ctx, "sqlite://"+filepath.Join(t.TempDir(), "moat.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var progress strings.Builder
	var results []Result
	cfg := Config{URL: srv.URL, Target: "tiny", Rules: 30, ListRules: 47, BulkBatch: 5, Concurrency: 3,
		Groups: 4, ListRepeat: 2, Progress: &progress, ProgressEvery: 10, ServerPIDs: []int{os.Getpid()}, Cleanup: true}
	if err := Run(ctx, cfg, func(r Result) { results = append(results, r) }); err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	var cases []string
	for _, r := range results {
		cases = append(cases, r.Case)
		if r.Errors != 0 || r.Bench != "api" || r.Target != "tiny" || r.ServerCPUS == nil {
			t.Errorf("%+v", r)
		}
	}
	if got := strings.Join(cases, ","); got != "rule_create,rule_bulk_fill,list_rules,list_groups" {
		t.Fatalf("cases %s", got)
	}
	// Lists hold the 47 rules, 2 egress rules per group and the default
	// groups' 4 rules of the bench's project and of the admin's.
	const all = 47 + 4*2 + 4 + 4
	if r := results[0]; r.Rules != 30 || r.Requests != 30 || r.RulesPerS <= 0 {
		t.Errorf("create %+v", r)
	}
	if r := results[1]; r.Rules != 17 || r.Requests != 4 {
		t.Errorf("bulk fill %+v", r) // rules 30..46 over 4 groups: 5+4+4+4, one batch each
	}
	if r := results[2]; r.Rules != all || r.Bytes == 0 || r.Requests != 2 {
		t.Errorf("list rules %+v", r)
	}
	if r := results[3]; r.Rules != all || r.Groups != 4+2 || r.Bytes == 0 {
		t.Errorf("list groups %+v", r)
	}
	if !strings.Contains(progress.String(), "30/30 rules created") {
		t.Errorf("no progress line:\n%s", progress.String())
	}
}

func TestRunUnreachable(t *testing.T) {
	err := Run(context.Background(), Config{URL: "http://127.0.0.1:1", Rules: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("err = %v", err)
	}
}

// TestRunNoauthHint: a server that ignores X-Project-Id is refused with a
// hint about header identity.
func TestRunNoauthHint(t *testing.T) {
	srv := apitest.Start(t, apitest.Config{})
	err := Run(context.Background(), Config{URL: srv.URL + "/", Rules: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "--auth headers") {
		t.Fatalf("err = %v", err)
	}
}

func TestServerTarget(t *testing.T) {
	for db, want := range map[string]string{
		"sqlite:///tmp/x/moat.db":                   "moat-sqlite",
		"sqlite3:///tmp/x/moat.db?synchronous=full": "moat-sqlite",
		"postgres://moat:moat@127.0.0.1:5432/moat":  "moat-postgres",
		"postgresql://127.0.0.1/moat":               "moat-postgres",
	} {
		if got := (&Server{DB: db}).Target(); got != want {
			t.Errorf("Target of %s = %s, want %s", db, got, want)
		}
	}
}
