package nftables

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// An Interval is an inclusive range of addresses of one family.
type Interval struct {
	Lo, Hi netip.Addr
}

// PrefixInterval is the interval a prefix covers; ok is false for an
// invalid prefix or one with host bits set.
func PrefixInterval(p netip.Prefix) (Interval, bool) {
	if !p.IsValid() || p.Masked() != p || p.Addr().Zone() != "" {
		return Interval{}, false
	}
	lo := p.Addr()
	b := lo.AsSlice()
	host := lo.BitLen() - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	hi, _ := netip.AddrFromSlice(b)
	return Interval{Lo: lo, Hi: hi}, true
}

func (iv Interval) check() error {
	switch {
	case !iv.Lo.IsValid() || !iv.Hi.IsValid():
		return fmt.Errorf("invalid address")
	case iv.Lo.Is4In6() || iv.Hi.Is4In6():
		return fmt.Errorf("%s: IPv4-mapped IPv6 address (use the IPv4 address)", iv)
	case iv.Lo.Is4() != iv.Hi.Is4():
		return fmt.Errorf("%s-%s: mixes IPv4 and IPv6", iv.Lo, iv.Hi)
	case iv.Lo.Zone() != "" || iv.Hi.Zone() != "":
		return fmt.Errorf("%s: addresses with a zone are not allowed", iv)
	case iv.Hi.Less(iv.Lo):
		return fmt.Errorf("%s-%s: low end above high end", iv.Lo, iv.Hi)
	}
	return nil
}

// Single reports whether the interval holds one address.
func (iv Interval) Single() bool { return iv.Lo == iv.Hi }

// Prefix returns the prefix the interval is, if it is one.
func (iv Interval) Prefix() (netip.Prefix, bool) {
	if iv.check() != nil {
		return netip.Prefix{}, false
	}
	lo, hi := iv.Lo.AsSlice(), iv.Hi.AsSlice()
	// The common leading bits are the prefix; after them lo must be all
	// zeros and hi all ones.
	bits := 0
	for bits < len(lo)*8 && bit(lo, bits) == bit(hi, bits) {
		bits++
	}
	for i := bits; i < len(lo)*8; i++ {
		if bit(lo, i) != 0 || bit(hi, i) != 1 {
			return netip.Prefix{}, false
		}
	}
	return netip.PrefixFrom(iv.Lo, bits), true
}

func bit(b []byte, i int) byte { return b[i/8] >> (7 - i%8) & 1 }

// String writes the interval as nft lists it: "192.0.2.7",
// "198.51.100.0/24", "203.0.113.10-203.0.113.20".
func (iv Interval) String() string {
	if iv.Single() {
		return iv.Lo.String()
	}
	if p, ok := iv.Prefix(); ok {
		return p.String()
	}
	return iv.Lo.String() + "-" + iv.Hi.String()
}

// Merge returns the union of the intervals as disjoint, non-adjacent
// intervals in ascending order, IPv4 before IPv6. nft interval sets refuse
// elements that overlap (ipset's hash:net takes them), so every address
// list that goes into one — remote-group members, address-group entries,
// a port's allowed address pairs — passes through Merge first. Invalid
// intervals are left out.
func Merge(ivs []Interval) []Interval {
	in := make([]Interval, 0, len(ivs))
	for _, iv := range ivs {
		if iv.check() == nil {
			in = append(in, iv)
		}
	}
	slices.SortFunc(in, func(a, b Interval) int {
		if c := a.Lo.Compare(b.Lo); c != 0 {
			return c
		}
		return b.Hi.Compare(a.Hi) // the wider first
	})
	var out []Interval
	for _, iv := range in {
		if n := len(out); n > 0 && out[n-1].Lo.Is4() == iv.Lo.Is4() {
			last := &out[n-1]
			next := last.Hi.Next()
			if !iv.Lo.Less(next) && iv.Lo != next && next.IsValid() {
				out = append(out, iv) // a gap: a new interval
				continue
			}
			if last.Hi.Less(iv.Hi) {
				last.Hi = iv.Hi
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// MergePrefixes is Merge of prefixes and addresses (given as /32 or
// /128). Prefixes with host bits set are masked: a remote IP prefix such
// as 10.0.0.1/24 means 10.0.0.0/24 (Neutron normalises it the same way).
func MergePrefixes(ps []netip.Prefix) []Interval {
	ivs := make([]Interval, 0, len(ps))
	for _, p := range ps {
		if iv, ok := PrefixInterval(p.Masked()); ok {
			ivs = append(ivs, iv)
		}
	}
	return Merge(ivs)
}

// IntervalTerms is the terms of the intervals, for a set's elements.
func IntervalTerms(ivs []Interval) []Term {
	out := make([]Term, len(ivs))
	for i, iv := range ivs {
		out[i] = IP(iv)
	}
	return out
}

// overlaps reports the first pair of intervals that share an address.
func overlaps(ivs []Interval) (Interval, Interval, bool) {
	s := slices.Clone(ivs)
	slices.SortFunc(s, func(a, b Interval) int {
		return cmp.Or(boolCmp(a.Lo.Is4(), b.Lo.Is4()), a.Lo.Compare(b.Lo))
	})
	for i := 1; i < len(s); i++ {
		if s[i-1].Lo.Is4() == s[i].Lo.Is4() && !s[i-1].Hi.Less(s[i].Lo) {
			return s[i-1], s[i], true
		}
	}
	return Interval{}, Interval{}, false
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}
