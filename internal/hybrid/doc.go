// Package hybrid is the vocabulary of Neutron's hybrid layout (the
// OVSHybridIptablesFirewallDriver and the OVS agent's wiring), in one
// place for everything that writes, reads or explains it: the compiler
// (internal/firewall), the agent and its syncers (internal/agent,
// internal/dataplane/...), trace and the parity tools.
//
// It owns
//
//   - the names: the wrap prefix and the fixed chains, a port's i, o and s
//     chains, its devices (tap, qbr, qvb, qvo), the patch ports between
//     br-int and a provider bridge (int-br-x, phy-br-x), the ipsets of
//     remote groups and address groups, the conntrack zone range and the
//     comments Neutron attaches;
//   - iptables' protocol table (how -p is spelled and read);
//   - the structured rule (Rule: match, action, comment and origin) the
//     compiler emits and the renderer that spells it as iptables-save
//     prints it; a second backend renders the same rules its own way;
//   - the one parser and the one writer of iptables-save text and of
//     ipset save/list text, and the splitting and quoting of a rule's
//     arguments as iptables-restore reads them.
//
// The package is pure: no kernel, file or network access. Model: Calico's
// felix/rules/rule_defs.go (names) and felix/generictables (rules as data,
// rendered late).
package hybrid
