package syncbench

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/testenv"
)

// needKernel skips (fails with MOAT_REQUIRE_KERNEL=1) unless the test can
// create namespaces and run both backends' tools and ipset.
func needKernel(t *testing.T) {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, append(append(iptables.Legacy.Binaries(), iptables.NFT.Binaries()...), "ipset")...)
}

// TestBenchSmoke runs Run on a small host so that the benchmark code
// stays working; the real runs are TestAgentBench's.
func TestBenchSmoke(t *testing.T) {
	needKernel(t)
	rows, err := Run(context.Background(), Options{Ports: []int{20}, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*len(benchPhases) {
		t.Errorf("%d rows, want %d", len(rows), 2*len(benchPhases))
	}
	var b strings.Builder
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}

// TestAgentBench measures the syncer at the sizes in MOAT_BENCH_PORTS
// (e.g. "1000,5000") and prints a Markdown table; BENCHMARKS.md quotes it.
//
//	MOAT_BENCH_PORTS=1000,5000 MOAT_BENCH_REPEAT=3 go test ./internal/syncbench -run TestAgentBench -count=1 -v -timeout 60m
func TestAgentBench(t *testing.T) {
	spec := testenv.OptIn(t, "MOAT_BENCH_PORTS", "=1000,5000 to run the agent dataplane benchmark (root, minutes)")
	needKernel(t)
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
	rows, err := Run(context.Background(), Options{Ports: ports, Repeat: repeat, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}

// TestLine pins the JSON line of `moat bench agent`'s syncer phases: the
// keys and their order are what the command has always printed.
func TestLine(t *testing.T) {
	r := Row{Backend: iptables.NFT, Ports: 1000, Phase: PhaseOneRule, Wall: 28123456 * time.Nanosecond,
		CPU: 26 * time.Millisecond, ChildCPU: 24500 * time.Microsecond, Detail: "100 chains patched"}
	b, err := json.Marshal(r.Line())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"backend":"iptables-nft","bench":"syncer","child_cpu_ms":24.5,"cpu_ms":26,"detail":"100 chains patched",` +
		`"phase":"Apply after one rule added to one app group","ports":1000,"wall_ms":28.123}`
	if string(b) != want {
		t.Errorf("line\n got %s\nwant %s", b, want)
	}
	// The command used to encode a map with the same values: the same bytes.
	m, _ := json.Marshal(map[string]any{"bench": "syncer", "backend": r.Backend, "ports": r.Ports, "phase": r.Phase,
		"wall_ms": 28.123, "cpu_ms": 26.0, "child_cpu_ms": 24.5, "detail": r.Detail})
	if string(m) != want {
		t.Errorf("map encoding differs:\n got %s\nwant %s", m, want)
	}
}

// TestNFTBenchSmoke runs RunNFT on a small host: every transaction the
// syncer commits replays with a bare nft -f to the same ruleset (RunNFT
// fails otherwise), and each phase is reported.
func TestNFTBenchSmoke(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "nft")
	rows, err := RunNFT(context.Background(), Options{Ports: []int{20}, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(nftPhases) {
		t.Errorf("%d rows, want %d", len(rows), len(nftPhases))
	}
	var b strings.Builder
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}
