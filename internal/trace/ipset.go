package trace

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
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
// output (Name:/Type:/Header:/Members: blocks); the format is detected.
func ParseIPSets(r io.Reader) (IPSets, error) {
	s, err := readString(r)
	if err != nil {
		return nil, fmt.Errorf("read ipsets: %w", err)
	}
	sets := IPSets{}
	if strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "Name:") {
		err = parseIPSetList(s, sets)
	} else {
		err = parseIPSetSave(s, sets)
	}
	if err != nil {
		return nil, err
	}
	for _, set := range sets {
		set.index()
	}
	return sets, nil
}

func parseIPSetSave(s string, sets IPSets) error {
	for n, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "create", "-N", "-exist":
			if f[0] == "-exist" {
				f = f[1:]
			}
			if len(f) < 3 {
				return fmt.Errorf("ipset line %d: bad create line %q", n+1, clip(line))
			}
			set := &IPSet{Name: f[1], Type: f[2], Family: "inet"}
			for i := 3; i+1 < len(f); i++ {
				if f[i] == "family" {
					set.Family = f[i+1]
				}
			}
			if sets[set.Name] != nil {
				return fmt.Errorf("ipset line %d: set %s created twice", n+1, set.Name)
			}
			sets[set.Name] = set
		case "add", "-A":
			if len(f) < 3 {
				return fmt.Errorf("ipset line %d: bad add line %q", n+1, clip(line))
			}
			set := sets[f[1]]
			if set == nil {
				return fmt.Errorf("ipset line %d: add to set %s before its create line", n+1, f[1])
			}
			set.Members = append(set.Members, strings.Join(f[2:], " "))
		default:
			return fmt.Errorf("ipset line %d: unexpected %q (want ipset save or ipset list output)", n+1, clip(line))
		}
	}
	return nil
}

func parseIPSetList(s string, sets IPSets) error {
	var set *IPSet
	inMembers := false
	for n, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			inMembers = false
			continue
		}
		if inMembers {
			set.Members = append(set.Members, strings.TrimSpace(line))
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("ipset list line %d: unexpected %q", n+1, clip(line))
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			if sets[val] != nil {
				return fmt.Errorf("ipset list line %d: set %s listed twice", n+1, val)
			}
			set = &IPSet{Name: val, Family: "inet"}
			sets[val] = set
		case "Members":
			if set == nil {
				return fmt.Errorf("ipset list line %d: Members before Name", n+1)
			}
			inMembers = true
		default:
			if set == nil {
				return fmt.Errorf("ipset list line %d: %s before Name", n+1, key)
			}
			switch key {
			case "Type":
				set.Type = val
			case "Header":
				f := strings.Fields(val)
				for i := 0; i+1 < len(f); i++ {
					if f[i] == "family" {
						set.Family = f[i+1]
					}
				}
			}
		}
	}
	return nil
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
