// Package neutron holds the resources moat serves (security groups, rules and,
// later, networks, subnets and ports) and Neutron 21's rules for validating and
// normalising them. It is pure: no I/O, no SQL, no HTTP. The API layer decodes
// requests into these types, the store persists them, the firewall compiler
// reads them.
package neutron
