package iptables

import (
	"context"
	"testing"
)

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
