package hybrid

import (
	"strings"
)

// Chains. Neutron's IptablesManager wraps the chains of an agent in a
// prefix made of the agent binary's name cut to 16 characters plus "-":
// neutron-openvswi- for neutron-openvswitch-agent, whose layout moat keeps.
const (
	// Wrap is the OVS agent's wrap prefix.
	Wrap = "neutron-openvswi-"

	// ChainFilterTop is shared by all Neutron agents of a host, not wrapped.
	ChainFilterTop = "neutron-filter-top"

	// The wrapped chains' names after the prefix, the same under every
	// agent's prefix.
	LocalForward    = "FORWARD"
	LocalInput      = "INPUT"
	LocalOutput     = "OUTPUT"
	LocalLocal      = "local"
	LocalSG         = "sg-chain"
	LocalFallback   = "sg-fallback"
	LocalPrerouting = "PREROUTING" // raw

	ChainForward    = Wrap + LocalForward
	ChainInput      = Wrap + LocalInput
	ChainOutput     = Wrap + LocalOutput
	ChainLocal      = Wrap + LocalLocal
	ChainSG         = Wrap + LocalSG
	ChainFallback   = Wrap + LocalFallback
	ChainPrerouting = Wrap + LocalPrerouting
)

// fixedChains are the chains every host has.
var fixedChains = map[string]bool{
	ChainFilterTop: true, ChainForward: true, ChainInput: true, ChainOutput: true,
	ChainLocal: true, ChainSG: true, ChainFallback: true, ChainPrerouting: true,
}

// FixedChain reports whether name is one of the chains every host has (a
// port whose id is "g-chain" would otherwise name its s chain
// neutron-openvswi-sg-chain).
func FixedChain(name string) bool { return fixedChains[name] }

// OwnedChain reports whether a chain belongs to the layout: the wrapped
// chains and neutron-filter-top. Chains of other tools (libvirt, docker,
// other Neutron agents) do not.
func OwnedChain(name string) bool {
	return strings.HasPrefix(name, Wrap) || name == ChainFilterTop
}

// Port chains: the wrap prefix, a kind letter and the port id cut so that
// what follows the prefix is at most 11 characters
// (MAX_IPTABLES_CHAIN_LEN_WRAP): "neutron-openvswi-i" + id[:10].
const (
	// ChainIDLen is how much of a port id its chain names carry.
	ChainIDLen = 10
	// wrappedChainLen is the length of a port chain's name after the wrap
	// prefix.
	wrappedChainLen = 1 + ChainIDLen
)

// ChainKind says which of its chains a port chain is.
type ChainKind byte

const (
	ChainIn    ChainKind = 'i' // traffic to the VM
	ChainOut   ChainKind = 'o' // traffic from the VM
	ChainSpoof ChainKind = 's' // anti-spoofing, jumped to from the o chain
)

// ChainID is the part of a port id its chain names carry: its first 10
// characters (all of it when shorter).
func ChainID(portID string) string {
	if len(portID) > ChainIDLen {
		return portID[:ChainIDLen]
	}
	return portID
}

// PortChain is the name of a port's chain of the given kind.
func PortChain(kind ChainKind, portID string) string {
	return Wrap + string(kind) + ChainID(portID)
}

// PortChains are a port's chains in the filter table.
type PortChains struct {
	In    string // i: traffic to the VM
	Out   string // o: traffic from the VM
	Spoof string // s: anti-spoofing
}

// PortChainsUnder returns the chain names of a port id (or of a prefix of
// at least 10 characters) under a wrap prefix: Wrap for moat and the OVS
// agent, another agent's for dumps of its hosts.
func PortChainsUnder(wrap, portID string) PortChains {
	id := ChainID(portID)
	return PortChains{In: wrap + "i" + id, Out: wrap + "o" + id, Spoof: wrap + "s" + id}
}

// SplitWrap splits a wrapped chain name into its wrap prefix and the rest:
// "neutron-openvswi-sg-chain" is ("neutron-openvswi-", "sg-chain"). Any
// Neutron agent's prefix is recognised: a binary name cut to 16
// characters plus "-", and the binaries are called neutron-*.
func SplitWrap(chain string) (wrap, local string, ok bool) {
	if len(chain) > len(Wrap) && chain[len(Wrap)-1] == '-' && strings.HasPrefix(chain, "neutron-") {
		return chain[:len(Wrap)], chain[len(Wrap):], true
	}
	return "", "", false
}

// PortChainOf says whether a chain (under any wrap prefix) is a port's i, o
// or s chain, and which port's: the first 10 characters of its id.
func PortChainOf(chain string) (kind ChainKind, chainID string, ok bool) {
	_, local, wrapped := SplitWrap(chain)
	// "sg-fallback" has the length of a port chain name and starts with s.
	if !wrapped || len(local) != wrappedChainLen || local == LocalFallback {
		return 0, "", false
	}
	switch k := ChainKind(local[0]); k {
	case ChainIn, ChainOut, ChainSpoof:
		return k, local[1:], true
	}
	return 0, "", false
}

// Devices. Neutron and os-vif name a port's devices a prefix plus the port
// id cut to 11 characters (tapc0a350e0-43), which fits the kernel's
// 15-character limit on interface names.
const (
	// DevIDLen is how much of a port id a device name carries.
	DevIDLen = 11

	TapPrefix        = "tap" // the VM's tap, created by the hypervisor
	BridgePrefix     = "qbr" // the per-port Linux bridge the firewall sees
	BridgeVethPrefix = "qvb" // the veth end in the Linux bridge
	OVSVethPrefix    = "qvo" // the veth end in the integration bridge

	// IntegrationBridge is the OVS bridge every port's qvo joins.
	IntegrationBridge = "br-int"
)

// DevID is the part of a port id that device names carry: its first 11
// characters (all of it when shorter).
func DevID(portID string) string {
	if len(portID) > DevIDLen {
		return portID[:DevIDLen]
	}
	return portID
}

// TapName is the name of a port's tap device ("tap" + id[:11]).
func TapName(portID string) string { return TapPrefix + DevID(portID) }

// BridgeName is the name of a port's Linux bridge ("qbr" + id[:11]).
func BridgeName(portID string) string { return BridgePrefix + DevID(portID) }

// BridgeVethName is the veth end in the port's Linux bridge ("qvb" +
// id[:11]).
func BridgeVethName(portID string) string { return BridgeVethPrefix + DevID(portID) }

// OVSVethName is the veth end in the integration bridge ("qvo" + id[:11]).
func OVSVethName(portID string) string { return OVSVethPrefix + DevID(portID) }

// Devices are the host-side devices of one port, in the order a frame to
// the VM crosses them backwards: VM eth0 - Tap - Bridge (qbr) -
// BridgeVeth (qvb) = OVSVeth (qvo) - br-int.
type Devices struct {
	Tap        string // tapXXXXXXXX-XX
	Bridge     string // qbrXXXXXXXX-XX, the per-port Linux bridge
	BridgeVeth string // qvbXXXXXXXX-XX, the bridge's end of the veth pair
	OVSVeth    string // qvoXXXXXXXX-XX, the br-int end
}

// PortDevices returns the device names of a port id (or of an id prefix
// of at least 11 characters).
func PortDevices(portID string) Devices {
	id := DevID(portID)
	return Devices{Tap: TapPrefix + id, Bridge: BridgePrefix + id, BridgeVeth: BridgeVethPrefix + id, OVSVeth: OVSVethPrefix + id}
}

// DevicesOfTap returns the devices of the port whose tap is tap.
func DevicesOfTap(tap string) Devices {
	return PortDevices(strings.TrimPrefix(tap, TapPrefix))
}

// DevIDFromName returns the port-id prefix of a device of the hybrid wiring
// (tap/qbr/qvb/qvo + id[:11]) and whether name is one.
func DevIDFromName(name string) (devID string, ok bool) {
	for _, p := range []string{TapPrefix, BridgePrefix, BridgeVethPrefix, OVSVethPrefix} {
		if id, found := strings.CutPrefix(name, p); found && CheckDeviceID(id) == nil {
			return id, true
		}
	}
	return "", false
}
