package nftrender

import (
	"context"
	"testing"
	"time"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

// BenchmarkRender renders the reference workload at 5,000 ports: the
// agent renders on every sync, so this is part of a change's cost.
func BenchmarkRender(b *testing.B) {
	rs, err := firewall.Compile(workload.NewBench(5000).State)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Render(rs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderAgain is a render with the cache of the one before:
// the agent's case after a change.
func BenchmarkRenderAgain(b *testing.B) {
	rs, err := firewall.Compile(workload.NewBench(5000).State)
	if err != nil {
		b.Fatal(err)
	}
	rd := NewRenderer()
	if _, err := rd.Render(rs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := rd.Render(rs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScript is the syncer's share of a full load at 5,000 ports:
// checking and rendering the rendered ruleset as one nft script.
func BenchmarkScript(b *testing.B) {
	rs, err := firewall.Compile(workload.NewBench(5000).State)
	if err != nil {
		b.Fatal(err)
	}
	out, err := Render(rs)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := nft.Script(out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKernelAddRule is the agent's path for bench.py's change at
// 5,000 ports on a real kernel (root): compile with the compiler's cache,
// render with the Renderer's, apply with the syncer, after a full load.
// The rule goes to app0's group: 500 ports' ingress chains, both
// families' tables in one transaction.
func BenchmarkKernelAddRule(b *testing.B) {
	testenv.RequireNetns(b)
	testenv.RequireTools(b, "nft")
	ns := netnstest.New(b, "moat-nftb")
	w := workload.NewBench(5000)
	c := firewall.NewCompiler()
	rd := NewRenderer()
	s := nft.NewSyncer(ns)
	ctx := context.Background()
	apply := func() nft.Stats {
		rs, err := c.Compile(w.State)
		if err != nil {
			b.Fatal(err)
		}
		out, err := rd.Render(rs)
		if err != nil {
			b.Fatal(err)
		}
		st, err := s.Apply(ctx, out)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	start := time.Now()
	apply()
	b.Logf("full load of 5,000 ports: %s", time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	port := 20000
	for b.Loop() {
		port++
		w.AddRule(w.Apps[0], port)
		st := apply()
		if st.ChainsRewritten != 500 || st.Commits != 1 {
			b.Fatalf("stats %+v, want 500 chains rewritten in one commit", st)
		}
	}
}
