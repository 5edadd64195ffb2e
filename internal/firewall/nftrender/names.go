package nftrender

import (
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// The names of moat's nftables layout: its one home (docs/nftables.md).
// Tables are nftables.BridgeTable, IPTable and IP6Table ("moat" in the
// bridge, ip and ip6 families).

// DirMark is the bit of the packet mark the bridge table sets on a frame
// that entered a port's bridge from its tap: traffic from the VM (the
// port's egress, Neutron's --physdev-in tap). Frames that entered from
// the qvb (to the VM, --physdev-out tap) have it clear. The ip and ip6
// tables dispatch on bridge . (mark & DirMark); the bridge table clears
// the bit again when the frame leaves the bridge, so that it never
// reaches another port's bridge set.
const DirMark = 0x10000000

// Bridge table.
const (
	// SetTaps holds the taps of every port the host dispatches.
	SetTaps = "vm_taps"
	// ChainMark (prerouting, before br_netfilter) sets DirMark on frames
	// from a tap and clears it on every other frame.
	ChainMark = "mark-from-vm"
	// ChainUnmark (postrouting) clears DirMark.
	ChainUnmark = "unmark"
	// BridgeMarkPriority runs ChainMark before br_netfilter (priority 0)
	// hands the frame to the ip hooks.
	BridgeMarkPriority   = "-300"
	BridgeUnmarkPriority = "300"
)

// ip and ip6 tables.
const (
	// ChainZone (prerouting, priority raw) gives a port's packets their
	// conntrack zone, or no tracking for a stateless port.
	ChainZone = "ct-zone"
	// MapZone maps an interface (the port's qbr, and its qvb for
	// packets that come in by it unbridged) to its conntrack zone.
	MapZone = "zone_of"
	// SetStateless holds the interfaces of stateless ports.
	SetStateless = "stateless"
	// ChainForward (forward hook) dispatches through MapForward.
	ChainForward = "filter-forward"
	// MapForward maps bridge . (mark & DirMark) to a port's verdict: a
	// jump to its chain, accept (port security off, trusted) or drop (a
	// rejected port).
	MapForward = "forward_ports"
	// SetSpoof holds the (bridge, MAC, address) triples a port may send
	// from; its address field is an interval.
	SetSpoof = "spoof_ok"
	// ChainFallback is the default drop.
	ChainFallback = "sg-fallback"
	// ChainUnfiltered, ChainTrusted and ChainRejected are where the
	// forward map sends a port without chains of its own: port security
	// disabled and trusted (network:*) ports are accepted, a rejected
	// port's traffic is dropped. A chain each, rather than a bare verdict
	// in the map, so that a trace or a counter says which it was.
	ChainUnfiltered = "accept-port-security-disabled"
	ChainTrusted    = "accept-trusted-port"
	ChainRejected   = "drop-rejected-port"
	// ChainCanary exists in the ip table only so that the agent finds out
	// cheaply when the tables were deleted or replaced behind its back.
	ChainCanary = "moat-canary"
)

// Port chains: one per port and direction, named by the whole port id
// (the compiler's ids are at most 36 characters of letters, digits, '-',
// '_' and '.', and the prefix makes a valid nft name of any of them).
const (
	inPrefix    = "i-"
	outPrefix   = "o-"
	spoofPrefix = "s-"
)

// InChain is the chain of a port's traffic to the VM.
func InChain(portID string) string { return inPrefix + portID }

// OutChain is the chain of a port's traffic from the VM.
func OutChain(portID string) string { return outPrefix + portID }

// SpoofChain is a port's anti-spoofing chain, used only when its pairs
// do not fit SetSpoof (never for what the compiler writes).
func SpoofChain(portID string) string { return spoofPrefix + portID }

// PortOfChain says whose chain a chain is: the port id and the
// direction (hybrid.Ingress or hybrid.Egress; "" for a spoof chain).
func PortOfChain(chain string) (portID, direction string, ok bool) {
	switch {
	case strings.HasPrefix(chain, inPrefix):
		return chain[len(inPrefix):], hybrid.Ingress, true
	case strings.HasPrefix(chain, outPrefix):
		return chain[len(outPrefix):], hybrid.Egress, true
	case strings.HasPrefix(chain, spoofPrefix):
		return chain[len(spoofPrefix):], "", true
	}
	return "", "", false
}

// BridgeOf is the bridge (qbr) of a port device: its tap, qvb or qbr.
func BridgeOf(dev string) (string, bool) {
	for _, p := range []string{hybrid.TapPrefix, hybrid.BridgeVethPrefix, hybrid.BridgePrefix} {
		if rest, ok := strings.CutPrefix(dev, p); ok && rest != "" {
			return hybrid.BridgePrefix + rest, true
		}
	}
	return "", false
}
