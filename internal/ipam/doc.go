// Package ipam is Neutron's address management as moat's server does it:
// a subnet's gateway and allocation pools, the addresses a port gets
// (requested fixed_ips, automatic ones, SLAAC's EUI-64), MAC addresses, and
// the addresses of a network's DHCP port. It takes typed requests from
// internal/neutron's validation; what it needs to know of the database
// (addresses and MACs in use) it asks through Store and MACStore, which the
// store's transaction implements and tests fake with maps. Everything else
// is pure.
package ipam
