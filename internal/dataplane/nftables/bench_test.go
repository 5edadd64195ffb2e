package nftables

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/testenv"
)

// oneRuleMore is scaled(n) with one rule more in the first group's
// ingress chain.
func oneRuleMore(l tLayout) tLayout {
	l.groups = slices.Clone(l.groups)
	g := &l.groups[0]
	g.in = append(slices.Clone(g.in), R("sgr added", Kw("tcp dport 8443 counter"), Accept))
	return l
}

// BenchmarkPlan measures the syncer's own work at 5,000 ports (no nft):
// checking and rendering the desired ruleset (every Apply does it), the
// plan of a one-rule change against the committed state, and the text of
// a full load.
func BenchmarkPlan(b *testing.B) {
	l := scaled(5000)
	rs, rs2 := l.ruleset(), oneRuleMore(l).ruleset()
	owned := MoatTables()
	want, err := compile(rs, owned)
	if err != nil {
		b.Fatal(err)
	}
	known := planAll(owned, map[TableID]*tableState{}, want).next
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			if _, err := compile(rs2, owned); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-rule-change", func(b *testing.B) {
		want2, _ := compile(rs2, owned)
		for b.Loop() {
			p := planAll(owned, known, want2)
			if len(p.ops) != 14 {
				b.Fatalf("%d commands", len(p.ops))
			}
			_ = p.text()
		}
	})
	b.Run("apply-one-rule-change", func(b *testing.B) {
		// compile + plan + render, as Apply does before running nft.
		for b.Loop() {
			want2, _ := compile(rs2, owned)
			_ = planAll(owned, known, want2).text()
		}
	})
	b.Run("full-load-text", func(b *testing.B) {
		for b.Loop() {
			_ = planAll(owned, map[TableID]*tableState{}, want).text()
		}
	})
}

func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestKernelBenchOneRule is an opt-in measurement, not a test of speed:
// at N ports it loads the layout, then times a one-rule change through
// the syncer (compile, plan, nft -f) against a bare `nft -f` of the same
// transaction text, alternating, and logs medians of wall time and of the
// CPU time of the child processes (ip netns exec + nft).
//
//	MOAT_NFT_BENCH=1000,5000 go test -run TestKernelBenchOneRule -v ./internal/dataplane/nftables/
func TestKernelBenchOneRule(t *testing.T) {
	sizes := testenv.OptIn(t, "MOAT_NFT_BENCH", "=1000,5000 to run the measurement")
	needKernel(t)
	const rounds = 5
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			t.Fatalf("MOAT_NFT_BENCH=%s: want port counts", sizes)
		}
		ns := newNetns(t)
		ctx := context.Background()
		l := scaled(n)
		base, more := l.ruleset(), oneRuleMore(l).ruleset()
		s := NewSyncer(ns)
		t0, c0 := time.Now(), childCPU()
		st := mustApply(t, s, base)
		t.Logf("%d ports: full load %v wall, %v child CPU, %d commands, %d bytes", n, time.Since(t0).Round(time.Millisecond), (childCPU() - c0).Round(time.Millisecond), st.Commands, st.Bytes)

		// The transaction texts of the change and of its undo.
		owned := MoatTables()
		wBase, wMore := mustCompile(t, base), mustCompile(t, more)
		fwd := planAll(owned, stateAll(wBase), wMore).text()
		back := planAll(owned, stateAll(wMore), wBase).text()

		var syncWall, syncCPU, bareWall, bareCPU []time.Duration
		for range rounds {
			for _, rs := range []*Ruleset{more, base} {
				t0, c0 := time.Now(), childCPU()
				if st := mustApply(t, s, rs); st.Commits != 1 || st.Read {
					t.Fatalf("syncer apply: %+v", st)
				}
				syncWall, syncCPU = append(syncWall, time.Since(t0)), append(syncCPU, childCPU()-c0)
			}
			for _, text := range [][]byte{fwd, back} {
				t0, c0 := time.Now(), childCPU()
				if _, err := ns.Run(ctx, text, "nft", "-f", "-"); err != nil {
					t.Fatal(err)
				}
				bareWall, bareCPU = append(bareWall, time.Since(t0)), append(bareCPU, childCPU()-c0)
			}
			s.Invalidate() // the bare nft moved the generation; make the syncer re-read once
			mustApply(t, s, base)
		}
		t.Logf("%d ports, one rule more in a group chain (%d-byte transaction): syncer %v wall / %v CPU; bare nft -f %v wall / %v CPU (medians of %d)",
			n, len(fwd), median(syncWall), median(syncCPU), median(bareWall), median(bareCPU), 2*rounds)
		fmt.Printf("nftables-one-rule ports=%d syncer_wall_ms=%.1f syncer_cpu_ms=%.1f bare_wall_ms=%.1f bare_cpu_ms=%.1f\n", n,
			ms(median(syncWall)), ms(median(syncCPU)), ms(median(bareWall)), ms(median(bareCPU)))
	}
}

func stateAll(w map[TableID]*wantTable) map[TableID]*tableState {
	out := map[TableID]*tableState{}
	for id, wt := range w {
		out[id] = stateOf(wt)
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(100 * time.Microsecond)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
