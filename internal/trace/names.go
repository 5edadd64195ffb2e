package trace

import (
	"sort"
	"strings"
)

// Names of the hybrid layout (Neutron's OVSHybridIptablesFirewallDriver,
// and moat's agent, which keeps them). A port's devices are its type
// prefix plus the first 11 characters of the port id; its chains are the
// wrap prefix plus i, o or s plus the first 10 characters.

// DefaultWrap is the wrap prefix of the OVS agent's chains:
// basename(argv[0])[:16] of neutron-openvswitch-agent, plus "-".
const DefaultWrap = "neutron-openvswi-"

const (
	portDevIDLen   = 11
	portChainIDLen = 10
)

// Devices are the host-side devices of one port, in the order a frame to
// the VM crosses them backwards: VM eth0 - Tap - Bridge (qbr) -
// BridgeVeth (qvb) = OVSVeth (qvo) - br-int. Capture points use them.
type Devices struct {
	Tap        string // tapXXXXXXXX-XX
	Bridge     string // qbrXXXXXXXX-XX, the per-port Linux bridge
	BridgeVeth string // qvbXXXXXXXX-XX, the bridge's end of the veth pair
	OVSVeth    string // qvoXXXXXXXX-XX, the br-int end
}

// PortDevices returns the device names of a port id (or of an id prefix
// of at least 11 characters).
func PortDevices(portID string) Devices {
	id := portID
	if len(id) > portDevIDLen {
		id = id[:portDevIDLen]
	}
	return Devices{Tap: "tap" + id, Bridge: "qbr" + id, BridgeVeth: "qvb" + id, OVSVeth: "qvo" + id}
}

// DevicesOfTap returns the devices of the port whose tap is tap.
func DevicesOfTap(tap string) Devices {
	return PortDevices(strings.TrimPrefix(tap, "tap"))
}

// PortChains are a port's chains in the filter table.
type PortChains struct {
	In    string // i: traffic to the VM
	Out   string // o: traffic from the VM
	Spoof string // s: anti-spoofing
}

// PortChainNames returns the chain names of a port id (or of a prefix of
// at least 10 characters) under a wrap prefix.
func PortChainNames(wrap, portID string) PortChains {
	id := portID
	if len(id) > portChainIDLen {
		id = id[:portChainIDLen]
	}
	return PortChains{In: wrap + "i" + id, Out: wrap + "o" + id, Spoof: wrap + "s" + id}
}

// wrapOf splits a wrapped chain name into its wrap prefix and the rest:
// "neutron-openvswi-sg-chain" is ("neutron-openvswi-", "sg-chain").
// Neutron agents' wrap prefixes are a binary name cut to 16 characters
// plus "-", and the binaries are called neutron-*.
func wrapOf(chain string) (wrap, local string, ok bool) {
	if len(chain) > 17 && chain[16] == '-' && strings.HasPrefix(chain, "neutron-") {
		return chain[:17], chain[17:], true
	}
	return "", "", false
}

// portChainKind says whether a chain is a port's i, o or s chain, and which
// port (the first 10 characters of its id).
func portChainKind(chain string) (kind byte, id10 string) {
	_, local, ok := wrapOf(chain)
	// "sg-fallback" has the length of a port chain name, and starts
	// with s.
	if !ok || len(local) != 1+portChainIDLen || local == "sg-fallback" {
		return 0, ""
	}
	switch local[0] {
	case 'i', 'o', 's':
		return local[0], local[1:]
	}
	return 0, ""
}

// Taps lists the tap devices the filter table's rules name (in physdev
// matches), sorted: the ports this ruleset filters or accepts.
func (rs *Ruleset) Taps() []string {
	if rs.taps != nil {
		return rs.taps
	}
	seen := map[string]bool{}
	t := rs.Table("filter")
	if t == nil {
		return nil
	}
	for _, c := range t.Chains {
		_, local, ok := wrapOf(c.Name)
		if !ok || (local != "FORWARD" && local != "sg-chain" && local != "INPUT") {
			continue
		}
		for _, r := range c.Rules {
			k := r.indexKey()
			if (k.kind == keyPhysIn || k.kind == keyPhysOut) && strings.HasPrefix(k.dev, "tap") {
				seen[k.dev] = true
			}
		}
	}
	taps := make([]string, 0, len(seen))
	for tap := range seen {
		taps = append(taps, tap)
	}
	sort.Strings(taps)
	rs.taps = taps
	return taps
}

// wraps lists the wrap prefixes of the filter table's port chains (one,
// normally: neutron-openvswi-).
func (rs *Ruleset) wraps() []string {
	if rs.wrapList != nil {
		return rs.wrapList
	}
	seen := map[string]bool{}
	rs.wrapList = []string{}
	if t := rs.Table("filter"); t != nil {
		for _, c := range t.Chains {
			if kind, _ := portChainKind(c.Name); kind == 'i' {
				w, _, _ := wrapOf(c.Name)
				if !seen[w] {
					seen[w] = true
					rs.wrapList = append(rs.wrapList, w)
				}
			}
		}
	}
	sort.Strings(rs.wrapList)
	return rs.wrapList
}
