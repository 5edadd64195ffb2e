package trace

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// IPSets are the host's ipsets, by name.
type IPSets map[string]*IPSet

// IPSet is one set. Only the types Neutron and moat create (hash:net,
// hash:ip) can be matched; a set of another type is kept so that a rule
// naming it is reported as not understood rather than as missing.
type IPSet struct {
	Name   string
	Type   string
	Family string // "inet" or "inet6"
	// Members are the entries as listed ("192.168.1.12", "10.10.0.0/24").
	Members []string

	// nets holds the parsed members by prefix length, for lookups in
	// O(distinct prefix lengths).
	nets    map[netip.Prefix]struct{}
	lengths []int
	nomatch map[netip.Prefix]struct{}
	// problem says why members cannot be matched ("" if they can).
	problem string
}

// ParseIPSets reads `ipset save` output (create/add lines) or `ipset list`
// output (Name:/Type:/Header:/Members: blocks); the format is detected
// (hybrid.ReadIPSets).
func ParseIPSets(r io.Reader) (IPSets, error) {
	s, err := readString(r)
	if err != nil {
		return nil, fmt.Errorf("read ipsets: %w", err)
	}
	text, err := hybrid.ReadIPSets(s)
	if err != nil {
		return nil, err
	}
	sets := make(IPSets, len(text))
	for _, t := range text {
		set := &IPSet{Name: t.Name, Type: t.Type, Family: t.Family, Members: t.Members}
		set.index()
		sets[set.Name] = set
	}
	return sets, nil
}

// index parses the members. A set it cannot read (another type, ranges,
// members of the other family) gets a problem instead of an error: the
// dump is still good for every packet that never meets the set.
func (s *IPSet) index() {
	if s.Type != "hash:net" && s.Type != "hash:ip" {
		s.problem = "set type " + s.Type + " is not modelled (only hash:net and hash:ip)"
		return
	}
	s.nets = map[netip.Prefix]struct{}{}
	lengths := map[int]bool{}
	for _, m := range s.Members {
		f := strings.Fields(m)
		if len(f) == 0 {
			continue
		}
		p, err := parseNet(f[0])
		if err != nil {
			s.problem = fmt.Sprintf("member %q is not an address or prefix", m)
			return
		}
		if (s.Family == "inet6") != p.Addr().Is6() {
			s.problem = fmt.Sprintf("member %s is not of the set's family %s", f[0], s.Family)
			return
		}
		nomatch := false
		for _, opt := range f[1:] {
			if opt == "nomatch" {
				nomatch = true
			}
		}
		if nomatch {
			if s.nomatch == nil {
				s.nomatch = map[netip.Prefix]struct{}{}
			}
			s.nomatch[p] = struct{}{}
		} else {
			s.nets[p] = struct{}{}
		}
		lengths[p.Bits()] = true
	}
	for l := range lengths {
		s.lengths = append(s.lengths, l)
	}
	// Longest prefix first: a nomatch entry wins over a shorter entry
	// that contains it, as in the kernel's hash:net lookup.
	sort.Sort(sort.Reverse(sort.IntSlice(s.lengths)))
}

// Contains reports whether a is in the set (hash:net and hash:ip only).
func (s *IPSet) Contains(a netip.Addr) bool {
	for _, l := range s.lengths {
		p, err := a.Prefix(l)
		if err != nil {
			continue
		}
		if _, ok := s.nomatch[p]; ok {
			return false
		}
		if _, ok := s.nets[p]; ok {
			return true
		}
	}
	return false
}

// parseNet reads an address or a prefix, clearing host bits.
func parseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
