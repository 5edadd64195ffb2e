package nftrender

import (
	"testing"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
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
