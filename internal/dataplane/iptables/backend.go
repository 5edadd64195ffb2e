package iptables

import (
	"fmt"
	"strings"
)

// Backend is the iptables variant a host runs: the legacy x_tables kernel
// interface or nf_tables through the iptables-nft compatibility layer. The
// two must never be mixed in one network namespace (once iptables-legacy has
// touched a table it stays registered, and iptables-nft-save then warns about
// it), so the agent is told which one to use and calls that variant's
// binaries by their explicit names; it never relies on the distribution's
// alternatives symlink, which is global to the host.
type Backend string

const (
	Legacy Backend = "iptables-legacy"
	NFT    Backend = "iptables-nft"
)

// Backends lists the supported backends, for flag help.
func Backends() []Backend { return []Backend{Legacy, NFT} }

// ParseBackend reads a backend from a flag value: "iptables-legacy" or
// "legacy", "iptables-nft" or "nft".
func ParseBackend(s string) (Backend, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "iptables-legacy", "legacy":
		return Legacy, nil
	case "iptables-nft", "nft":
		return NFT, nil
	}
	return "", fmt.Errorf("unknown iptables backend %q (want %s or %s)", s, Legacy, NFT)
}

// Valid reports whether b is one of the supported backends.
func (b Backend) Valid() bool { return b == Legacy || b == NFT }

// variant is the binary name infix: "legacy" or "nft".
func (b Backend) variant() string { return strings.TrimPrefix(string(b), "iptables-") }

// Family is an address family: iptables (IPv4) or ip6tables (IPv6).
type Family int

const (
	IPv4 Family = iota
	IPv6
)

// families is the order in which families are applied and reported.
var families = [...]Family{IPv4, IPv6}

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// prefix is the tool name prefix of the family.
func (f Family) prefix() string {
	if f == IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// Command is the binary of a tool of this backend for family f: Command(IPv6,
// "save") is "ip6tables-nft-save" for NFT, Command(IPv4, "") is
// "iptables-legacy".
func (b Backend) Command(f Family, tool string) string {
	name := f.prefix() + "-" + b.variant()
	if tool != "" {
		name += "-" + tool
	}
	return name
}

// Binaries lists every binary the syncer runs for this backend, so that
// callers (and tests) can check they are installed.
func (b Backend) Binaries() []string {
	var out []string
	for _, f := range families {
		for _, tool := range []string{"", "save", "restore"} {
			out = append(out, b.Command(f, tool))
		}
	}
	return out
}
