package firewall

import "hash/maphash"

// fingerprint identifies a list of addresses (remote-group members, address
// group entries) without keeping a copy: the sums of two independently
// seeded 64-bit hashes of the entries, plus their count. Sums make it
// independent of order (an agent may list members in any order), and 128
// bits make a collision, which would keep stale members, not a practical
// concern.
type fingerprint struct{ a, b uint64 }

type seeds struct{ s1, s2 maphash.Seed }

func newSeeds() seeds { return seeds{maphash.MakeSeed(), maphash.MakeSeed()} }

// listFingerprint fingerprints a list of strings as a multiset.
func (s seeds) listFingerprint(list []string) fingerprint {
	var fp fingerprint
	for _, x := range list {
		fp.a += maphash.String(s.s1, x)
		fp.b += maphash.String(s.s2, x)
	}
	fp.a += uint64(len(list))
	return fp
}

// mix combines fingerprints in order, with a label, for a value that
// depends on several lists.
func (s seeds) mix(acc fingerprint, label string, x fingerprint) fingerprint {
	return fingerprint{
		a: acc.a*31 + x.a + maphash.String(s.s1, label),
		b: acc.b*31 + x.b + maphash.String(s.s2, label),
	}
}
