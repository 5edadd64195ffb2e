// Package trace answers "what happens to this packet?" for a host's
// iptables rules: it reads iptables-save and ipset output, simulates one
// packet through the raw and filter tables with netfilter's semantics, and
// says which rule decided, what that rule stands for in Neutron's hybrid
// layout (a security group rule, the default drop, anti-spoofing, ...) and,
// for a default drop, which security group rule would let the packet in.
//
// The package is pure: it parses what an io.Reader gives it and computes.
// Reading the kernel (iptables-save -c, ipset save) is the caller's job,
// so the same code explains a live host, a dump from a Neutron host and
// what moat would install for a spec.
//
// Rules are parsed lazily: loading a ruleset only splits it into chains
// and rules (keeping each rule's counters), and a rule's matches are
// compiled the first time a packet reaches it. Long dispatch chains
// (Neutron's FORWARD, sg-chain and raw PREROUTING hold two or three rules
// per port) are indexed by the device a rule requires, so a trace through
// a 5,000-port ruleset looks only at the rules of its own port. See
// docs/trace.md for what is modelled and what is not.
package trace
