// Package conntrack deletes connection tracking entries over netlink, so
// that a flow a removed rule or a removed remote-group member allowed
// stops, instead of living on as ESTABLISHED. (Neutron forks the conntrack
// tool once per entry batch; one netlink dump per cleanup is much cheaper.)
package conntrack

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Filter selects entries of one port's zone. Unset fields match anything.
type Filter struct {
	// Family is 4 or 6.
	Family int
	// Zone is the port's conntrack zone (the hybrid layout puts both
	// directions of a port's traffic in it).
	Zone uint16
	// Proto is the IP protocol number, 0 for any.
	Proto uint8
	// Src and Dst match the original direction's addresses.
	Src, Dst *net.IPNet
	// DstPortMin..DstPortMax match the original destination port (TCP,
	// UDP, SCTP, DCCP, UDP-Lite); zero means any.
	DstPortMin, DstPortMax uint16
}

func (f Filter) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ipv%d zone=%d", f.Family, f.Zone)
	if f.Proto != 0 {
		fmt.Fprintf(&b, " proto=%d", f.Proto)
	}
	if f.Src != nil {
		fmt.Fprintf(&b, " src=%s", f.Src)
	}
	if f.Dst != nil {
		fmt.Fprintf(&b, " dst=%s", f.Dst)
	}
	if f.DstPortMin != 0 {
		fmt.Fprintf(&b, " dport=%d-%d", f.DstPortMin, f.DstPortMax)
	}
	return b.String()
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f Filter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Zone != f.Zone {
		return false
	}
	t := flow.Forward
	if f.Proto != 0 && t.Protocol != f.Proto {
		return false
	}
	if f.Src != nil && !f.Src.Contains(t.SrcIP) {
		return false
	}
	if f.Dst != nil && !f.Dst.Contains(t.DstIP) {
		return false
	}
	if f.DstPortMin != 0 && (t.DstPort < f.DstPortMin || t.DstPort > f.DstPortMax) {
		return false
	}
	return true
}

// Deleter deletes the entries that match any of a set of filters.
type Deleter interface {
	Delete(filters []Filter) (deleted int, err error)
}

// Netlink deletes through a netlink handle (nil: the calling process's
// network namespace).
type Netlink struct {
	Handle *netlink.Handle
}

// Delete dumps each family's table once and deletes the matching entries.
func (n Netlink) Delete(filters []Filter) (int, error) {
	byFamily := map[int][]netlink.CustomConntrackFilter{}
	for _, f := range filters {
		byFamily[f.Family] = append(byFamily[f.Family], f)
	}
	families := make([]int, 0, len(byFamily))
	for fam := range byFamily {
		families = append(families, fam)
	}
	sort.Ints(families)
	total := 0
	for _, fam := range families {
		inet := netlink.InetFamily(syscall.AF_INET)
		if fam == 6 {
			inet = netlink.InetFamily(syscall.AF_INET6)
		}
		var deleted uint
		var err error
		if n.Handle != nil {
			deleted, err = n.Handle.ConntrackDeleteFilters(netlink.ConntrackTable, inet, byFamily[fam]...)
		} else {
			deleted, err = netlink.ConntrackDeleteFilters(netlink.ConntrackTable, inet, byFamily[fam]...)
		}
		total += int(deleted)
		if err != nil {
			return total, fmt.Errorf("delete IPv%d conntrack entries: %w", fam, err)
		}
	}
	return total, nil
}

// Recorder is a fake Deleter that remembers what it was asked to delete.
type Recorder struct {
	Filters []Filter
}

func (r *Recorder) Delete(filters []Filter) (int, error) {
	r.Filters = append(r.Filters, filters...)
	return len(filters), nil
}
