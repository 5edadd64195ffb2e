package iptables

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/testenv"
)

// TestBenchSmoke runs RunBench on a small host so that the benchmark code
// stays working; the real runs are TestAgentBench's.
func TestBenchSmoke(t *testing.T) {
	needKernel(t, Legacy)
	needKernel(t, NFT)
	rows, err := RunBench(context.Background(), BenchOptions{Ports: []int{20}, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*len(benchPhases) {
		t.Errorf("%d rows, want %d", len(rows), 2*len(benchPhases))
	}
	var b strings.Builder
	if err := WriteBenchTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}

// TestAgentBench measures the syncer at the sizes in MOAT_BENCH_PORTS
// (e.g. "1000,5000") and prints a Markdown table; BENCHMARKS.md quotes it.
//
//	MOAT_BENCH_PORTS=1000,5000 MOAT_BENCH_REPEAT=3 go test ./internal/dataplane/iptables -run TestAgentBench -count=1 -v -timeout 60m
func TestAgentBench(t *testing.T) {
	spec := testenv.OptIn(t, "MOAT_BENCH_PORTS", "=1000,5000 to run the agent dataplane benchmark (root, minutes)")
	needKernel(t, Legacy)
	needKernel(t, NFT)
	var ports []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			t.Fatalf("MOAT_BENCH_PORTS: bad size %q", f)
		}
		ports = append(ports, n)
	}
	repeat := 3
	if r := os.Getenv("MOAT_BENCH_REPEAT"); r != "" {
		var err error
		if repeat, err = strconv.Atoi(r); err != nil || repeat < 1 {
			t.Fatalf("MOAT_BENCH_REPEAT: bad value %q", r)
		}
	}
	rows, err := RunBench(context.Background(), BenchOptions{Ports: ports, Repeat: repeat, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteBenchTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}

// nopExec answers saves with nothing and accepts every restore: the
// syncer's own work, without the tools.
type nopExec struct{}

func (nopExec) Run(context.Context, []byte, string, ...string) ([]byte, error) { return nil, nil }

// BenchmarkApplyCompute is the Go side of a full Apply at 1,000 ports:
// diffing and writing the restore input.
func BenchmarkApplyCompute(b *testing.B) {
	rs := newBench(b, 1000).rs
	b.ReportAllocs()
	for b.Loop() {
		s := NewSyncer(nopExec{}, NFT)
		if _, err := s.Apply(context.Background(), rs); err != nil {
			b.Fatal(err)
		}
	}
}
