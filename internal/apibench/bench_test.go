package apibench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/store/pgtest"
)

// The Go benchmarks measure moat in-process, over real HTTP on loopback
// with a fresh SQLite database, as `moat bench api` does:
//
//	go test ./internal/apibench -run '^$' -bench . -benchtime 2000x
//
// Rule creates get slower as groups fill up (each create checks the group's
// rules for a duplicate), so compare create numbers at the same -benchtime.

// benchServer starts an in-process server with a bench project of groups
// groups holding prefill rules (bulk-created).
func benchServer(tb testing.TB, dir string, groups, prefill int) (*Server, *bench) {
	tb.Helper()
	ctx := context.Background()
	srv, err := StartServer(ctx, "sqlite://"+filepath.Join(dir, "moat.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := newBench(Config{URL: srv.URL, Target: "go-bench", Rules: 0, ListRules: prefill,
		Groups: groups, Concurrency: 2, BulkBatch: 1000}, nil)
	if err != nil {
		srv.Close()
		tb.Fatal(err)
	}
	if err := b.setup(ctx); err != nil {
		srv.Close()
		tb.Fatal(err)
	}
	if prefill > 0 {
		r, err := b.bulkFill(ctx)
		if err == nil && r.Errors > 0 {
			err = fmt.Errorf("%d bulk creates failed", r.Errors)
		}
		if err != nil {
			srv.Close()
			tb.Fatal(err)
		}
	}
	return srv, b
}

// BenchmarkRuleCreate is one POST /v2.0/security-group-rules at a time, into
// 10 groups that start empty ("empty") or with 1,000 rules each ("at10k").
func BenchmarkRuleCreate(b *testing.B) {
	for _, c := range []struct {
		name    string
		prefill int
	}{{"empty", 0}, {"at10k", 10000}} {
		b.Run(c.name, func(b *testing.B) {
			srv, bn := benchServer(b, b.TempDir(), 10, c.prefill)
			defer srv.Close()
			defer bn.close()
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = bn.ruleJSON(c.prefill + i)
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := bn.do(ctx, http.MethodPost, "/v2.0/security-group-rules", bn.member, bodies[i])
				if err != nil {
					b.Fatal(err)
				}
				if r.status != http.StatusCreated {
					b.Fatal(unexpected(http.MethodPost, "/v2.0/security-group-rules", r))
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// listFixture is a server holding 10,000 bench rules in 10 groups, shared by
// the list benchmarks and stopped by TestMain.
var listFixture struct {
	once sync.Once
	dir  string
	srv  *Server
	b    *bench
	err  error
}

func tenKRules(tb testing.TB) *bench {
	f := &listFixture
	f.once.Do(func() {
		if f.dir, f.err = os.MkdirTemp("", "apibench-"); f.err != nil {
			return
		}
		f.srv, f.b = benchServer(tb, f.dir, 10, 10000)
	})
	if f.err != nil || f.b == nil {
		tb.Fatalf("list fixture: %v", f.err)
	}
	return f.b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if f := &listFixture; f.srv != nil {
		f.b.close()
		f.srv.Close()
	}
	if listFixture.dir != "" {
		os.RemoveAll(listFixture.dir)
	}
	pgtest.Stop()
	moatbin.Remove()
	os.Exit(code)
}

func benchmarkList(b *testing.B, path string) {
	bn := tenKRules(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := bn.do(ctx, http.MethodGet, path, bn.admin, nil)
		if err != nil {
			b.Fatal(err)
		}
		if r.status != http.StatusOK {
			b.Fatal(unexpected(http.MethodGet, path, r))
		}
		b.SetBytes(int64(len(r.body)))
	}
}

// BenchmarkListRules10k is an admin GET /v2.0/security-group-rules of
// 10,028 rules (10,000 + 2 egress rules per group + 4 in each of the
// two default groups).
func BenchmarkListRules10k(b *testing.B) { benchmarkList(b, "/v2.0/security-group-rules") }

// BenchmarkListGroups10k is an admin GET /v2.0/security-groups, the groups
// embedding the same 10,028 rules.
func BenchmarkListGroups10k(b *testing.B) { benchmarkList(b, "/v2.0/security-groups") }
