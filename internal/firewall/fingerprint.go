package firewall

import (
	"encoding/binary"
	"hash/maphash"
)

// fingerprint identifies the content of a cache entry's inputs. It is 128
// bits wide (two independently seeded maphash sums), so that a collision,
// which would silently reuse stale rules, is not a practical concern.
type fingerprint struct{ a, b uint64 }

// fingerprinter feeds values into a fingerprint. Every value is length- or
// tag-prefixed so that different sequences cannot produce the same stream.
type fingerprinter struct {
	h1, h2 maphash.Hash
}

type seeds struct{ s1, s2 maphash.Seed }

func newSeeds() seeds { return seeds{maphash.MakeSeed(), maphash.MakeSeed()} }

func (f *fingerprinter) reset(s seeds) {
	f.h1.SetSeed(s.s1)
	f.h2.SetSeed(s.s2)
}

func (f *fingerprinter) str(s string) {
	f.int(len(s))
	f.h1.WriteString(s)
	f.h2.WriteString(s)
}

func (f *fingerprinter) int(n int) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	f.h1.Write(b[:])
	f.h2.Write(b[:])
}

func (f *fingerprinter) bool(v bool) {
	if v {
		f.int(1)
	} else {
		f.int(0)
	}
}

// optInt feeds a nullable int.
func (f *fingerprinter) optInt(p *int) {
	f.bool(p != nil)
	if p != nil {
		f.int(*p)
	}
}

func (f *fingerprinter) fp(x fingerprint) {
	f.int(int(x.a))
	f.int(int(x.b))
}

func (f *fingerprinter) sum() fingerprint {
	return fingerprint{f.h1.Sum64(), f.h2.Sum64()}
}
