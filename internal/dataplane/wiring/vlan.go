package wiring

import (
	"fmt"
	"sort"
)

// Local VLAN tags, as Neutron's OVS agent allocates them: each network with
// a port on this host gets one tag on br-int (the lowest free one), shared
// by all its ports there, and gives it back when its last port leaves.
// Tags are host-local; they never leave br-int.
const (
	MinVLAN = 1
	MaxVLAN = 4094
	// DeadVLAN is the tag Neutron gives a port that must not pass traffic.
	DeadVLAN = 4095
)

// VLANs allocates local VLAN tags to networks. It is not safe for
// concurrent use (the agent's sync loop owns it); the zero value is not
// usable, use NewVLANs.
type VLANs struct {
	min, max int
	tagOf    map[string]int    // network -> tag
	netOf    map[int]string    // tag -> network
	portNet  map[string]string // port -> network
	ports    map[string]int    // network -> number of ports
}

// NewVLANs returns an allocator of the tags 1..4094.
func NewVLANs() *VLANs {
	v, _ := NewVLANRange(MinVLAN, MaxVLAN)
	return v
}

// NewVLANRange returns an allocator of the tags min..max (within 1..4094).
func NewVLANRange(min, max int) (*VLANs, error) {
	if min < MinVLAN || max > MaxVLAN || min > max {
		return nil, fmt.Errorf("local VLAN range %d..%d: want %d <= min <= max <= %d", min, max, MinVLAN, MaxVLAN)
	}
	return &VLANs{
		min: min, max: max,
		tagOf: map[string]int{}, netOf: map[int]string{},
		portNet: map[string]string{}, ports: map[string]int{},
	}, nil
}

// Seed records a port found wired with a tag (Wirer.Plugged after a
// restart), so that its network keeps that tag. It fails, recording
// nothing, when the tag is out of range or already belongs to another
// network, or when the network already has another tag; the caller then
// calls Assign and re-plugs the port with the tag Assign returns.
func (v *VLANs) Seed(portID, networkID string, tag int) error {
	if portID == "" || networkID == "" {
		return fmt.Errorf("seed local VLAN %d: port id and network id are required (port %q, network %q)", tag, portID, networkID)
	}
	if tag < v.min || tag > v.max {
		return fmt.Errorf("seed port %s: local VLAN %d is outside %d..%d", portID, tag, v.min, v.max)
	}
	if net, ok := v.netOf[tag]; ok && net != networkID {
		return fmt.Errorf("seed port %s: local VLAN %d already belongs to network %s, not %s", portID, tag, net, networkID)
	}
	if t, ok := v.tagOf[networkID]; ok && t != tag {
		return fmt.Errorf("seed port %s: network %s already has local VLAN %d, not %d", portID, networkID, t, tag)
	}
	if old, ok := v.portNet[portID]; ok {
		if old == networkID {
			return nil
		}
		v.Release(portID)
	}
	v.tagOf[networkID] = tag
	v.netOf[tag] = networkID
	v.portNet[portID] = networkID
	v.ports[networkID]++
	return nil
}

// Assign records that portID is on networkID and returns the network's
// tag, allocating the lowest free one for the network's first port. A port
// recorded on another network is moved. It fails only when all tags are
// taken.
func (v *VLANs) Assign(portID, networkID string) (int, error) {
	if old, ok := v.portNet[portID]; ok {
		if old == networkID {
			return v.tagOf[networkID], nil
		}
		v.Release(portID)
	}
	tag, ok := v.tagOf[networkID]
	if !ok {
		for t := v.min; t <= v.max; t++ {
			if _, used := v.netOf[t]; !used {
				tag, ok = t, true
				break
			}
		}
		if !ok {
			return 0, fmt.Errorf("assign a local VLAN to network %s (port %s): all %d tags (%d..%d) are in use", networkID, portID, v.max-v.min+1, v.min, v.max)
		}
		v.tagOf[networkID] = tag
		v.netOf[tag] = networkID
	}
	v.portNet[portID] = networkID
	v.ports[networkID]++
	return tag, nil
}

// Release forgets a port. When it was its network's last port, the
// network's tag becomes free and freed is true. Unknown ports are ignored.
func (v *VLANs) Release(portID string) (tag int, freed bool) {
	net, ok := v.portNet[portID]
	if !ok {
		return 0, false
	}
	delete(v.portNet, portID)
	tag = v.tagOf[net]
	if v.ports[net]--; v.ports[net] > 0 {
		return tag, false
	}
	delete(v.ports, net)
	delete(v.tagOf, net)
	delete(v.netOf, tag)
	return tag, true
}

// Tag returns a network's tag, if it has one.
func (v *VLANs) Tag(networkID string) (int, bool) {
	t, ok := v.tagOf[networkID]
	return t, ok
}

// Network returns the network a port was recorded on.
func (v *VLANs) Network(portID string) (string, bool) {
	n, ok := v.portNet[portID]
	return n, ok
}

// Networks returns the networks holding a tag, as network -> tag.
func (v *VLANs) Networks() map[string]int {
	out := make(map[string]int, len(v.tagOf))
	for n, t := range v.tagOf {
		out[n] = t
	}
	return out
}

// Ports returns the recorded ports, sorted.
func (v *VLANs) Ports() []string {
	out := make([]string, 0, len(v.portNet))
	for p := range v.portNet {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
