package firewall

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Security-group logging (Neutron's logging extension) as a pass after the
// compile: WithLogging copies a Ruleset and puts a Log rule in front of
// each rule of a logged port's chains that decides a verdict, so the
// verdicts stay those of the chains without logging and a host with no
// log objects holds exactly the compiled rules. As Neutron's OVS log
// driver: an accepted session is logged once, at its first packet (the
// accepting rule's match plus conntrack state NEW); a dropped packet is
// logged each time (the dropping rule's match); both at most Rate a
// second after a burst of Burst, per rule.

// LogPort is what one port logs (the union of the log objects that
// concern it).
type LogPort struct {
	PortID       string
	Accept, Drop bool
	// AcceptGroups, when set, limits the logged accepts to the rules of
	// these groups (a log whose resource is a group); nil logs them all.
	AcceptGroups []string
}

// LogOptions are the agent's logging settings.
type LogOptions struct {
	// Group is the netlink log group the rules send packets to.
	Group uint16
	// Rate and Burst limit each log rule: packets a second, and how many
	// may come at once (Neutron's [network_log] rate_limit, burst_limit).
	Rate, Burst uint32
}

// LogEntry is what a log rule's prefix stands for: a port's verdict and
// what decided it, the security group rules (their ids) or a built-in
// protection (Origin, e.g. default-drop, anti-spoofing, invalid-state).
type LogEntry struct {
	PortID    string
	Direction string // Ingress or Egress
	Ethertype string // IPv4 or IPv6
	Verdict   string // "ACCEPT" or "DROP"
	Origin    hybrid.OriginKind
	Rules     []string
}

// logPrefixRe is what a port id must look like to go into a prefix: the
// prefix is at most 63 bytes of characters iptables-save prints unquoted,
// and a port id is never trusted to be one.
var logPrefixRe = regexp.MustCompile(`^[0-9a-fA-F-]{1,36}$`)

// LogPrefix is the prefix of the log rule n of a port ("moat_<port>_A_3":
// "A" accept, "D" drop).
func LogPrefix(portID, verdict string, n int) string {
	return "moat_" + portID + "_" + verdict[:1] + "_" + strconv.Itoa(n)
}

// WithLogging returns rs with the log rules of ports (sorted by port id,
// ports rs rejected or that have no chains are left out) and what each
// prefix stands for. With no port it returns rs itself. rs is not
// changed: its chains are shared with the compiler's cache.
func WithLogging(rs *Ruleset, ports []LogPort, o LogOptions) (*Ruleset, map[string]LogEntry) {
	return (&LogCache{}).WithLogging(rs, ports, o)
}

// LogCache keeps the logged chains of the last call and the one before:
// a chain the compiler reused unchanged (same rules array) with the same
// logging is not logged again. An agent keeps one across syncs; it is not
// safe for concurrent use.
type LogCache struct {
	cur, prev map[logKey]*loggedChain
	entries   int // the index's size last time
}

type logKey struct {
	first        *string // the compiled chain's rules array
	n, start     int
	accept, drop bool
	groups       string
	dir, ether   string
	o            LogOptions
}

type loggedChain struct {
	c       Chain
	entries []prefixEntry
}

type prefixEntry struct {
	prefix string
	e      LogEntry
}

// WithLogging is the package's WithLogging through the cache.
func (lc *LogCache) WithLogging(rs *Ruleset, ports []LogPort, o LogOptions) (*Ruleset, map[string]LogEntry) {
	// Sized as last time's: the maps are most of the cost of a call whose
	// chains all come from the cache.
	index := make(map[string]LogEntry, lc.entries)
	lc.prev, lc.cur = lc.cur, make(map[logKey]*loggedChain, len(lc.cur))
	defer func() { lc.entries = len(index) }()
	if len(ports) == 0 {
		return rs, index
	}
	out := *rs
	v4, v6 := rs.IPv4.Filter.Chains, rs.IPv6.Filter.Chains
	out.IPv4.Filter.Chains = cloneChains(v4)
	out.IPv6.Filter.Chains = cloneChains(v6)
	for _, lp := range ports {
		if (!lp.Accept && !lp.Drop) || !logPrefixRe.MatchString(lp.PortID) || rs.IsRejected(lp.PortID) {
			continue
		}
		groups := strings.Join(lp.AcceptGroups, ",")
		if lp.AcceptGroups != nil {
			groups = "=" + groups // nil (every group) and none differ
		}
		n := 0
		names := hybrid.PortChainsUnder(hybrid.Wrap, lp.PortID)
		for _, f := range []struct {
			t         *Table
			ethertype string
		}{{&out.IPv4.Filter, IPv4}, {&out.IPv6.Filter, IPv6}} {
			for _, c := range []struct {
				name, dir string
			}{{names.In, Ingress}, {names.Out, Egress}, {names.Spoof, Egress}} {
				i := chainIndex(f.t.Chains, c.name)
				if i < 0 || len(f.t.Chains[i].Rules) == 0 {
					continue
				}
				ch := f.t.Chains[i]
				k := logKey{first: &ch.Rules[0], n: len(ch.Rules), start: n, accept: lp.Accept, drop: lp.Drop, groups: groups,
					dir: c.dir, ether: f.ethertype, o: o}
				lcd := lc.cur[k]
				if lcd == nil {
					lcd = lc.prev[k]
				}
				if lcd == nil {
					lcd = logChain(ch, lp, o, c.dir, f.ethertype, n)
				}
				lc.cur[k] = lcd
				f.t.Chains[i] = lcd.c
				for _, pe := range lcd.entries {
					index[pe.prefix] = pe.e
				}
				n += len(lcd.entries)
			}
		}
	}
	return &out, index
}

func cloneChains(cs []Chain) []Chain { return slices.Clone(cs) }

// chainIndex finds a chain in a table's chains (sorted by name).
func chainIndex(cs []Chain, name string) int {
	i, ok := slices.BinarySearchFunc(cs, name, func(c Chain, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return -1
	}
	return i
}

// logChain is c with a log rule before each of its deciding rules, the
// port's log rules numbered from n.
func logChain(c Chain, lp LogPort, o LogOptions, dir, ethertype string, n int) *loggedChain {
	specs := c.Specs()
	if len(specs) != len(c.Rules) {
		return &loggedChain{c: c} // a chain without its data is left as it is
	}
	out := Chain{Name: c.Name, Rules: make([]string, 0, len(c.Rules)+4)}
	outSpecs := make([]*hybrid.Rule, 0, len(specs)+4)
	var entries []prefixEntry
	for i, s := range specs {
		if lr, e, ok := logRule(s, lp, dir, ethertype); ok {
			prefix := LogPrefix(lp.PortID, e.Verdict, n)
			n++
			lr.Action = hybrid.Action{Kind: hybrid.Log, Log: hybrid.LogTarget{Prefix: prefix, Group: o.Group, Rate: o.Rate, Burst: o.Burst}}
			entries = append(entries, prefixEntry{prefix, e})
			out.Rules = append(out.Rules, lr.Iptables())
			outSpecs = append(outSpecs, lr)
		}
		out.Rules = append(out.Rules, c.Rules[i])
		outSpecs = append(outSpecs, s)
	}
	out.SetSpecs(outSpecs)
	return &loggedChain{c: out, entries: entries}
}

// logRule is the log rule to put before s, if s decides a verdict that lp
// logs.
func logRule(s *hybrid.Rule, lp LogPort, dir, ethertype string) (*hybrid.Rule, LogEntry, bool) {
	if s.Origin == nil {
		return nil, LogEntry{}, false
	}
	e := LogEntry{PortID: lp.PortID, Direction: dir, Ethertype: ethertype, Origin: s.Origin.Kind}
	if s.Origin.Direction != "" {
		e.Direction = s.Origin.Direction
	}
	m := s.Match
	switch a := s.Action; {
	case s.Origin.Kind == hybrid.OriginSGRule && (a.Kind == hybrid.Return || a.Kind == hybrid.Accept):
		if !lp.Accept || (m.States != 0 && m.States&hybrid.StateNew == 0) || !ofGroups(s.Origin.Rules, lp.AcceptGroups) {
			return nil, LogEntry{}, false
		}
		m.States = hybrid.StateNew // a session once, at its first packet
		e.Verdict = "ACCEPT"
		for _, r := range s.Origin.Rules {
			e.Rules = append(e.Rules, r.String())
		}
	case a.Kind == hybrid.Drop || (a.Kind == hybrid.Jump && a.Chain == hybrid.ChainFallback):
		if !lp.Drop {
			return nil, LogEntry{}, false
		}
		e.Verdict = "DROP"
		if a.Kind == hybrid.Jump {
			e.Origin = hybrid.OriginDefaultDrop
		}
	default:
		return nil, LogEntry{}, false
	}
	return &hybrid.Rule{Match: m, Origin: s.Origin}, e, true
}

// ofGroups reports whether a rule of refs is in groups (nil: any group).
func ofGroups(refs []hybrid.SGRuleRef, groups []string) bool {
	if groups == nil {
		return true
	}
	for _, r := range refs {
		for _, g := range groups {
			if r.GroupID == g {
				return true
			}
		}
	}
	return false
}
