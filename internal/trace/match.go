package trace

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Outcome is the result of a match, or of a whole rule.
type Outcome string

const (
	Yes     Outcome = "yes"
	No      Outcome = "no"
	Unknown Outcome = "unknown"
)

// and combines outcomes as netfilter does: all must hold; a condition that
// fails decides even when another is unknown.
func and(a, b Outcome) Outcome {
	switch {
	case a == No || b == No:
		return No
	case a == Unknown || b == Unknown:
		return Unknown
	}
	return Yes
}

func outcome(ok, neg bool) Outcome {
	if ok != neg {
		return Yes
	}
	return No
}

// eval evaluates one item against a packet. note explains an outcome that
// is not obvious from the item and the packet (why it is unknown, or a
// physdev subtlety).
func (it *item) eval(p *Packet, sets IPSets) (Outcome, string) {
	if it.unknown != "" {
		return Unknown, it.unknown
	}
	switch it.kind {
	case itemSrc:
		return outcome(it.pfx.Contains(p.Src), it.neg), ""
	case itemDst:
		return outcome(it.pfx.Contains(p.Dst), it.neg), ""
	case itemInIface:
		return outcome(ifaceMatch(p.InDev, it.name, it.wildcard), it.neg), devNote("in", p.InDev)
	case itemOutIface:
		return outcome(ifaceMatch(p.OutDev, it.name, it.wildcard), it.neg), devNote("out", p.OutDev)
	case itemProto:
		if it.num == 0 {
			return outcome(true, it.neg), ""
		}
		o := outcome(p.Protocol == it.num, it.neg)
		note := ""
		if o == No {
			note = "packet: protocol " + protoName(p.Protocol)
		}
		if it.num == 94 && p.Protocol == 4 {
			note = "-p ipip is protocol 94 in /etc/protocols; IP-in-IP is 4 (ipencap)"
		}
		return o, note
	case itemFragment:
		// The simulated packet is never a non-first fragment.
		return outcome(false, it.neg), "packet: not a fragment"
	case itemPhysIn:
		// xt_physdev: without a bridge in-port the option holds.
		if p.PhysIn == "" {
			return Yes, "no physdev-in at this hook: xt_physdev lets the option pass"
		}
		return outcome(ifaceMatch(p.PhysIn, it.name, it.wildcard), it.neg), "packet: physdev-in " + p.PhysIn
	case itemPhysOut:
		if p.PhysOut == "" {
			return Yes, "no physdev-out at this hook (the bridge has not chosen a port): xt_physdev lets the option pass"
		}
		return outcome(ifaceMatch(p.PhysOut, it.name, it.wildcard), it.neg), "packet: physdev-out " + p.PhysOut
	case itemPhysBridged:
		o := outcome(p.PhysOut != "", it.neg)
		if p.PhysOut == "" {
			return o, "not bridged at this hook: the frame goes to the host (INPUT) or the bridge has not decided yet"
		}
		return o, ""
	case itemPhysIsIn:
		return outcome(p.PhysIn != "", it.neg), ""
	case itemPhysIsOut:
		return outcome(p.PhysOut != "", it.neg), ""
	case itemSport, itemDport:
		if p.Protocol != it.proto {
			return outcome(false, it.neg), "packet: not " + protoName(it.proto)
		}
		port, flag := p.SrcPort, "--sport"
		if it.kind == itemDport {
			port, flag = p.DstPort, "--dport"
		}
		if port < 0 {
			return Unknown, "the packet has no " + flag + " (give one)"
		}
		return outcome(inRanges(port, it.ranges), it.neg), ""
	case itemMultiport:
		if !hasPorts(p.Protocol) {
			return outcome(false, it.neg), "packet: protocol " + protoName(p.Protocol) + " has no ports"
		}
		var ok bool
		switch it.which {
		case 's':
			if p.SrcPort < 0 {
				return Unknown, "the packet has no --sport (give one)"
			}
			ok = inRanges(p.SrcPort, it.ranges)
		case 'd':
			if p.DstPort < 0 {
				return Unknown, "the packet has no --dport (give one)"
			}
			ok = inRanges(p.DstPort, it.ranges)
		default:
			if p.SrcPort < 0 || p.DstPort < 0 {
				return Unknown, "the packet needs --sport and --dport"
			}
			ok = inRanges(p.SrcPort, it.ranges) || inRanges(p.DstPort, it.ranges)
		}
		return outcome(ok, it.neg), ""
	case itemICMP, itemICMPv6:
		want := 1
		if it.kind == itemICMPv6 {
			want = 58
		}
		if p.Protocol != want {
			return outcome(false, it.neg), "packet: not " + protoName(want)
		}
		if it.icmpType < 0 {
			return outcome(true, it.neg), ""
		}
		if p.ICMPType < 0 {
			return Unknown, "the packet has no --icmp-type (give one)"
		}
		if p.ICMPType != it.icmpType {
			return outcome(false, it.neg), ""
		}
		if it.icmpLo == 0 && it.icmpHi == 255 {
			return outcome(true, it.neg), ""
		}
		if p.ICMPCode < 0 {
			return Unknown, "the packet has no --icmp-code (give one)"
		}
		return outcome(p.ICMPCode >= it.icmpLo && p.ICMPCode <= it.icmpHi, it.neg), ""
	case itemState:
		return outcome(p.State&it.states != 0, it.neg), "packet: " + p.State.String()
	case itemMAC:
		if p.SrcMAC == nil {
			return Unknown, "the packet has no --src-mac (give one)"
		}
		return outcome(bytes.Equal(p.SrcMAC, it.mac), it.neg), "packet: " + p.SrcMAC.String()
	case itemSet:
		if sets == nil {
			return Unknown, "no ipset data (give the ipset save output)"
		}
		s := sets[it.name]
		if s == nil {
			return Unknown, "set " + it.name + " is not in the ipset data"
		}
		if s.problem != "" {
			return Unknown, "set " + it.name + ": " + s.problem
		}
		if (s.Family == "inet6") != p.IPv6 {
			return outcome(false, it.neg), "set " + it.name + " is of family " + s.Family
		}
		a := p.Src
		if it.setDirs[0] == 'd' {
			a = p.Dst
		}
		in := s.Contains(a)
		note := fmt.Sprintf("%s is not in %s", a, it.name)
		if in {
			note = fmt.Sprintf("%s is in %s", a, it.name)
		}
		return outcome(in, it.neg), note
	}
	return Unknown, "not modelled"
}

func devNote(which, dev string) string {
	if dev == "" {
		return "packet: no " + which + " interface at this hook"
	}
	return "packet: " + which + " " + dev
}

// ifaceMatch is iptables' interface comparison: exact, or a prefix for a
// name given with a trailing "+". An empty packet device matches nothing.
func ifaceMatch(dev, name string, wildcard bool) bool {
	if wildcard {
		return strings.HasPrefix(dev, name)
	}
	return dev == name
}

func inRanges(port int, rs []portRange) bool {
	for _, r := range rs {
		if port >= r.lo && port <= r.hi {
			return true
		}
	}
	return false
}

// Index of long chains by the device a rule requires.

type keyKind uint8

const (
	keyNone keyKind = iota
	keyPhysIn
	keyPhysOut
	keyIn
	keyOut
)

// indexKey is the device a rule requires, if any: the first plain
// (not negated, no wildcard) physdev-in, physdev-out, -i or -o option.
type indexKey struct {
	kind keyKind
	dev  string
}

// indexKey finds the rule's key with a light scan of its text, without
// compiling the rule: a 5,000-port ruleset holds 10,000 dispatch rules in
// FORWARD and sg-chain, of which a trace needs two.
func (r *Rule) indexKey() indexKey {
	if r.key != nil {
		return *r.key
	}
	k := scanKey(r.Text)
	r.key = &k
	return k
}

func scanKey(s string) indexKey {
	prevNeg := false
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i < len(s) && s[i] == '"' {
			// Skip quoted text (comments).
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
			prevNeg = false
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' {
			j++
		}
		tok := s[i:j]
		var kind keyKind
		switch tok {
		case "--physdev-in":
			kind = keyPhysIn
		case "--physdev-out":
			kind = keyPhysOut
		case "-i", "--in-interface":
			kind = keyIn
		case "-o", "--out-interface":
			kind = keyOut
		case "-j", "-g", "--jump", "--goto":
			return indexKey{}
		}
		if kind != keyNone && !prevNeg {
			k := j + 1
			e := k
			for e < len(s) && s[e] != ' ' {
				e++
			}
			if k < len(s) && s[k] != '"' {
				dev := s[k:e]
				if dev != "" && !strings.HasSuffix(dev, "+") {
					return indexKey{kind: kind, dev: dev}
				}
			}
		}
		prevNeg = tok == "!"
		i = j
	}
	return indexKey{}
}

// indexThreshold is the chain length from which a chain is indexed.
const indexThreshold = 32

// chainIndex lists a long chain's rules (0-based positions) by key.
type chainIndex struct {
	byKey  map[indexKey][]int32
	byKind [5][]int32 // all keyed rules of a kind
	free   []int32    // rules without a key
}

func (c *Chain) buildIndex() *chainIndex {
	if c.index != nil {
		return c.index
	}
	x := &chainIndex{byKey: make(map[indexKey][]int32, len(c.Rules))}
	for i, r := range c.Rules {
		k := r.indexKey()
		if k.kind == keyNone {
			x.free = append(x.free, int32(i))
			continue
		}
		x.byKey[k] = append(x.byKey[k], int32(i))
		x.byKind[k.kind] = append(x.byKind[k.kind], int32(i))
	}
	c.index = x
	return x
}

// candidates lists, in order, the positions of the rules of a long chain
// that can match the packet: every rule without a key, and the keyed rules
// whose device the packet has. A rule keyed on physdev-in/out is also a
// candidate when the packet has no such device at this hook, since
// xt_physdev then lets the option pass.
func (c *Chain) candidates(p *Packet) []int32 {
	c.visits++
	if c.index == nil && c.visits == 1 {
		// The first packet through the chain (a single trace) only needs
		// its own rules: a scan costs less than building the index, which
		// the next packet (a batch) builds.
		return c.scanCandidates(p)
	}
	x := c.buildIndex()
	lists := [][]int32{x.free}
	add := func(kind keyKind, dev string, passWhenEmpty bool) {
		if dev == "" {
			if passWhenEmpty {
				lists = append(lists, x.byKind[kind])
			}
			return
		}
		lists = append(lists, x.byKey[indexKey{kind, dev}])
	}
	add(keyPhysIn, p.PhysIn, true)
	add(keyPhysOut, p.PhysOut, true)
	add(keyIn, p.InDev, false)
	add(keyOut, p.OutDev, false)
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]int32, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return out
}

// scanCandidates is candidates without the index.
func (c *Chain) scanCandidates(p *Packet) []int32 {
	var out []int32
	for i, r := range c.Rules {
		k := r.indexKey()
		var ok bool
		switch k.kind {
		case keyNone:
			ok = true
		case keyPhysIn:
			ok = p.PhysIn == "" || p.PhysIn == k.dev
		case keyPhysOut:
			ok = p.PhysOut == "" || p.PhysOut == k.dev
		case keyIn:
			ok = p.InDev == k.dev
		case keyOut:
			ok = p.OutDev == k.dev
		}
		if ok {
			out = append(out, int32(i))
		}
	}
	if out == nil {
		out = []int32{} // nil means "not indexed" to the caller
	}
	return out
}
