package firewall

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Ruleset is the desired state of one host.
type Ruleset struct {
	IPv4 Tables
	IPv6 Tables

	// IPSets are the ipsets the rules refer to, sorted by name. Neutron
	// creates a set for every (remote group, ethertype) and (address group,
	// ethertype) a local port's rules name, even when it is empty. Empty
	// when Options.EnableIPSet is false.
	IPSets []IPSet

	// PortZones holds the conntrack zone of each filtered port, sorted by
	// port id. Stateless ports have a zone too (Neutron allocates one) but
	// their raw rules say --notrack.
	PortZones []PortZone

	// ZoneAssignments is HostState.Zones plus the zones allocated by this
	// compile; pass it back as HostState.Zones next time so that zones stay
	// stable. Entries of ports that left the host stay reserved until the
	// zone range is exhausted, as in Neutron.
	ZoneAssignments map[string]int

	// Rejected are the ports the compiler could not give rules, sorted by
	// port id, each with the reason: a bad id, MAC or address, a security
	// group it cannot render, a chain, device or ipset name it would share
	// with another port or group. A rejected port has no chains, no zone
	// and no ACCEPT rule; while its tap name is its own, FORWARD drops its
	// traffic (fail closed). An agent keeps its tap out of its bridge and
	// reports the reason. The rest of the host is compiled as if the port
	// were not there.
	Rejected []PortError

	// Warnings are problems that affect no port's traffic beyond the bad
	// object itself, e.g. a remote group member address that does not
	// parse (it is left out of the group: fail closed), sorted.
	Warnings []string
}

// PortError is a port the compiler rejected, and why.
type PortError struct {
	PortID string
	Reason string
}

// RejectedError is nil when no port was rejected, else an error naming
// every rejected port and its reason, for callers that want all or
// nothing (moat render, parity tests).
func (rs *Ruleset) RejectedError() error {
	if len(rs.Rejected) == 0 {
		return nil
	}
	msgs := make([]string, len(rs.Rejected))
	for i, r := range rs.Rejected {
		msgs[i] = fmt.Sprintf("port %q: %s", r.PortID, r.Reason)
	}
	return fmt.Errorf("%d port(s) rejected: %s", len(msgs), strings.Join(msgs, "; "))
}

// IsRejected reports whether the port was rejected.
func (rs *Ruleset) IsRejected(portID string) bool {
	_, ok := slices.BinarySearchFunc(rs.Rejected, portID, func(e PortError, id string) int {
		return strings.Compare(e.PortID, id)
	})
	return ok
}

// Tables are the two tables the hybrid driver writes for one family.
type Tables struct {
	Filter Table
	Raw    Table
}

// Table is what moat owns in one iptables table.
type Table struct {
	// Name is "filter" or "raw".
	Name string
	// Builtins are the kernel's built-in chains of the table, in the order
	// iptables-save prints them, each with the rules moat needs in it: the
	// jumps into moat's chains. Other software may own further rules in
	// these chains, so an agent must ensure these rules (at the top) rather
	// than replace the chain.
	Builtins []Chain
	// Chains are the chains moat owns entirely, sorted by name as
	// iptables-save prints them.
	Chains []Chain
}

// Chain is a named chain and its rules. Each rule is the text iptables-save
// prints after "-A <chain> ". Rules slices are shared with the compiler's
// cache: treat them as read-only.
type Chain struct {
	Name  string
	Rules []string
	// specs builds Specs; zero for a chain that has none.
	specs chainSpecs
}

// chainSpecs is where a chain's specs come from: chain i of src.
type chainSpecs struct {
	src specSource
	i   int
}

// Specs are the rules as data, index for index: what Rules[i] matches and
// does, and where it came from (Rules[i] is Specs[i].Iptables()). Chains
// the compiler built have them; chains read from a kernel (or built as
// literals) have none, and Specs returns nil. Most of a chain's specs are
// built on the first call (for a port's chains, those of all its chains)
// and kept as long as the chain is: the compile itself needs only the
// texts. Specs is safe for concurrent use; the rules are shared like
// Rules: treat them as read-only.
func (c Chain) Specs() []*hybrid.Rule {
	if c.specs.src == nil {
		return nil
	}
	return c.specs.src.chainSpecs(c.specs.i)
}

// SetSpecs gives the chain these specs, index for index with Rules (nil:
// none), for callers that build or edit chains themselves.
func (c *Chain) SetSpecs(specs []*hybrid.Rule) {
	c.specs = chainSpecs{}
	if specs != nil {
		c.specs.src = keptSpecs(specs)
	}
}

// Equal reports whether c and o have the same name and rules. Chains the
// compiler reused from its cache share their Rules array, which makes the
// comparison O(1) for unchanged chains.
func (c Chain) Equal(o Chain) bool {
	if c.Name != o.Name || len(c.Rules) != len(o.Rules) {
		return false
	}
	if len(c.Rules) == 0 || &c.Rules[0] == &o.Rules[0] {
		return true
	}
	return slices.Equal(c.Rules, o.Rules)
}

// Chain returns the chain (owned or built-in) named name.
func (t *Table) Chain(name string) (Chain, bool) {
	for _, c := range t.Builtins {
		if c.Name == name {
			return c, true
		}
	}
	i, ok := slices.BinarySearchFunc(t.Chains, name, func(c Chain, n string) int {
		return strings.Compare(c.Name, n)
	})
	if !ok {
		return Chain{}, false
	}
	return t.Chains[i], true
}

// RuleCount is the number of -A lines iptables-save prints for the table.
func (t *Table) RuleCount() int {
	n := 0
	for _, cs := range [][]Chain{t.Builtins, t.Chains} {
		for _, c := range cs {
			n += len(c.Rules)
		}
	}
	return n
}

// IPSet is one ipset.
type IPSet struct {
	Name string
	// Type is always "hash:net".
	Type string
	// Family is "inet" or "inet6".
	Family string
	// Members are the entries as `ipset list` prints them (network address;
	// no prefix length for a single host; a /0 is two /1 entries), sorted as
	// `ipset list -sorted` sorts them: by address, then longer prefix first.
	Members []string
}

// PortZone is the conntrack zone of one port.
type PortZone struct {
	PortID string
	Zone   int
}
