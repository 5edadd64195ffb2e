package firewall

import (
	"errors"
	"slices"

	"github.com/moat-sg/moat/internal/hybrid"
)

// ErrZonesExhausted is returned when every zone from hybrid.ZoneMin to
// hybrid.ZoneMax is taken by a port on the host.
var ErrZonesExhausted = errors.New("conntrack zones exhausted")

// zoneAllocator hands out zones the way Neutron's IpConntrackManager does:
// one past the highest zone in use (never below hybrid.ZoneMin) while that
// is at most hybrid.ZoneMax, and only then the lowest gap. Neutron
// allocates in port-id order during its first apply, so allocating in that
// order reproduces its numbering on a fresh host.
type zoneAllocator struct {
	assigned map[string]int // port id -> zone, including reserved old ports
	max      int            // highest zone in assigned, 0 if none
}

func newZoneAllocator(existing map[string]int) *zoneAllocator {
	a := &zoneAllocator{assigned: make(map[string]int, len(existing))}
	for id, z := range existing {
		a.assigned[id] = z
		a.max = max(a.max, z)
	}
	return a
}

// zone returns the port's zone, allocating one if it has none. present
// reports whether a port id is still on the host: when the range is
// exhausted, zones of ports that left are released and the search retried,
// as Neutron does.
func (a *zoneAllocator) zone(portID string, present func(string) bool) (int, error) {
	if z, ok := a.assigned[portID]; ok {
		return z, nil
	}
	z, ok := a.open()
	if !ok {
		for id := range a.assigned {
			if !present(id) {
				delete(a.assigned, id)
			}
		}
		a.max = 0
		for _, z := range a.assigned {
			a.max = max(a.max, z)
		}
		if z, ok = a.open(); !ok {
			return 0, ErrZonesExhausted
		}
	}
	a.assigned[portID] = z
	a.max = max(a.max, z)
	return z, nil
}

func (a *zoneAllocator) open() (int, bool) {
	if len(a.assigned) == 0 {
		return hybrid.ZoneMin, true
	}
	if a.max < hybrid.ZoneMax {
		return max(a.max+1, hybrid.ZoneMin), true
	}
	// Neutron's gap search: the first index where the sorted, de-duplicated
	// zones stop being hybrid.ZoneMin, hybrid.ZoneMin+1, ...
	used := make([]int, 0, len(a.assigned))
	for _, z := range a.assigned {
		used = append(used, z)
	}
	slices.Sort(used)
	used = slices.Compact(used)
	for i, z := range used {
		if z-i != hybrid.ZoneMin {
			return i + hybrid.ZoneMin, true
		}
	}
	return 0, false
}
