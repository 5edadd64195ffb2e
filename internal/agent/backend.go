package agent

import (
	"fmt"
	"strings"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/ipset"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/nftables"
)

// Backend is how an agent enforces security groups: Neutron's iptables
// layout on iptables-legacy or iptables-nft (with ipsets), or moat's
// nftables layout in its own tables (docs/nftables.md).
type Backend string

// NFTables is the nftables backend; the iptables ones are named as
// iptables.Backend names them.
const (
	IPTablesLegacy = Backend(iptables.Legacy)
	IPTablesNFT    = Backend(iptables.NFT)
	NFTablesLayout = Backend("nftables")
)

// Backends lists the backends, for flag help and tests.
func Backends() []Backend { return []Backend{IPTablesLegacy, IPTablesNFT, NFTablesLayout} }

// ParseBackend reads a backend from a flag value: the iptables ones as
// iptables.ParseBackend reads them, or "nftables".
func ParseBackend(s string) (Backend, error) {
	if strings.ToLower(strings.TrimSpace(s)) == string(NFTablesLayout) {
		return NFTablesLayout, nil
	}
	b, err := iptables.ParseBackend(s)
	if err != nil {
		return "", fmt.Errorf("unknown firewall backend %q (want %s, %s or %s)", s, IPTablesLegacy, IPTablesNFT, NFTablesLayout)
	}
	return Backend(b), nil
}

// Valid reports whether b is one of Backends.
func (b Backend) Valid() bool { return b == NFTablesLayout || iptables.Backend(b).Valid() }

// Binaries are the tools the backend runs.
func (b Backend) Binaries() []string {
	if b == NFTablesLayout {
		return []string{"nft"}
	}
	return append(iptables.Backend(b).Binaries(), "ipset")
}

// Kernel returns the backend's Rules and Sets over exec (the host, or a
// network namespace).
func (b Backend) Kernel(exec dataplane.Exec) (Rules, Sets, error) {
	switch {
	case b == NFTablesLayout:
		return NFTables(nftables.NewSyncer(exec)), NoSets(), nil
	case iptables.Backend(b).Valid():
		return IPTables(iptables.NewSyncer(exec, iptables.Backend(b))), ipset.NewSyncer(exec), nil
	}
	return nil, nil, fmt.Errorf("unknown firewall backend %q", b)
}
