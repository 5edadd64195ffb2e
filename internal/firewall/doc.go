// Package firewall compiles one host's security-group state into the rules
// that host must hold, exactly as Neutron 21's iptables-hybrid driver
// (OVSHybridIptablesFirewallDriver) would install them, apart from the
// deliberate fixes listed in docs/compatibility.md.
//
// The package is pure: it reads a HostState and returns a Ruleset, with no
// kernel, network or file access. The Ruleset is structured for an agent
// that reconciles chain by chain (iptables-restore --noflush) and ipset
// member by member: per family and table, the rules moat owns in built-in
// chains, then every chain moat owns, in the order iptables-save prints them,
// each rule spelled exactly as iptables-save prints it back, so that a
// desired chain can be compared with the kernel's line for line.
//
// A Compiler caches results per security group, per combination of groups
// and per port, keyed by a fingerprint of the inputs each depends on, so a
// new state costs work in proportion to what changed. See docs/firewall.md.
package firewall
