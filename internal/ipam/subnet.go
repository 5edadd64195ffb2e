package ipam

import (
	"fmt"
	"net/netip"

	"github.com/moat-sg/moat/internal/neutron"
)

// SubnetSpec is what a subnet's gateway and pools are computed from: the
// subnet's family, range and modes, and the gateway and pools a request
// gives (unset: Neutron's defaults).
type SubnetSpec struct {
	IPVersion       int
	CIDR            netip.Prefix
	GatewayIP       neutron.Opt[*netip.Addr]
	Pools           neutron.Opt[[]neutron.PoolRequest]
	EnableDHCP      bool
	IPv6RAMode      *string
	IPv6AddressMode *string
}

// BuildSubnet applies Neutron's subnet checks and defaults: the CIDR must
// match the IP version, IPv6 modes must agree, DHCP needs room for a server,
// the gateway defaults to the first address and must stay out of the
// pools, pools default to the rest of the range and must lie inside it
// without overlapping.
func BuildSubnet(req SubnetSpec) (gateway *netip.Addr, pools []neutron.Pool, err error) {
	p := req.CIDR
	if (req.IPVersion == 4) != p.Addr().Is4() {
		return nil, nil, neutron.InvalidInput(fmt.Sprintf("cidr '%s' does not match the ip_version '%d'", neutron.FormatCIDR(p), req.IPVersion))
	}
	if req.IPVersion == 4 && req.IPv6RAMode != nil {
		return nil, nil, neutron.InvalidInput("ipv6_ra_mode is not valid when ip_version is 4")
	}
	if req.IPVersion == 4 && req.IPv6AddressMode != nil {
		return nil, nil, neutron.InvalidInput("ipv6_address_mode is not valid when ip_version is 4")
	}
	if req.IPv6RAMode != nil && req.IPv6AddressMode != nil && *req.IPv6RAMode != *req.IPv6AddressMode {
		return nil, nil, neutron.InvalidInput(fmt.Sprintf("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value",
			*req.IPv6RAMode, *req.IPv6AddressMode))
	}
	if req.IPVersion == 6 && !req.EnableDHCP && (req.IPv6RAMode != nil || req.IPv6AddressMode != nil) {
		return nil, nil, neutron.InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
	}
	bits := p.Addr().BitLen()
	if req.EnableDHCP {
		if err := CheckDHCPCIDR(req.IPVersion, p); err != nil {
			return nil, nil, err
		}
	}
	first, last := rangeOf(p)
	// Usable host range: IPv4 excludes the network and broadcast
	// addresses, IPv6 only the subnet-router anycast address, as Neutron.
	lo, hi := first, last
	if req.IPVersion == 4 && p.Bits() < 31 {
		lo, hi = first.Next(), last.Prev()
	} else if req.IPVersion == 6 && p.Bits() < bits {
		lo = first.Next()
	}
	switch {
	case !req.GatewayIP.Set:
		gw := lo
		if req.IPVersion == 6 {
			gw = first
		}
		gateway = &gw
	case req.GatewayIP.V != nil:
		a := *req.GatewayIP.V
		if a.Is4() != p.Addr().Is4() {
			return nil, nil, neutron.InvalidInput(fmt.Sprintf("gateway_ip '%s' does not match the ip_version '%d'", a, req.IPVersion))
		}
		if req.IPVersion == 4 && p.Bits() < 31 && (a == first || a == last) {
			return nil, nil, neutron.InvalidInput("Gateway is not valid on subnet")
		}
		gateway = &a
	}
	if !req.Pools.Set {
		return gateway, excludeAddr(neutron.Pool{Start: lo, End: hi}, gateway), nil
	}
	for _, pr := range req.Pools.V {
		s, e := pr.Start, pr.End
		pool := neutron.Pool{Start: s, End: e}
		if s.Is4() != p.Addr().Is4() || e.Is4() != p.Addr().Is4() || e.Less(s) {
			// Neutron prints the pool as the request gave it (a dict).
			return nil, nil, neutron.InvalidAllocationPool(pr.StartText, pr.EndText)
		}
		if !p.Contains(s) || !p.Contains(e) || s == first || (req.IPVersion == 4 && p.Bits() < 31 && e == last) {
			return nil, nil, neutron.OutOfBoundsAllocationPool(pool, p)
		}
		pools = append(pools, pool)
	}
	for i := range pools {
		for j := i + 1; j < len(pools); j++ {
			if !(pools[i].End.Less(pools[j].Start) || pools[j].End.Less(pools[i].Start)) {
				return nil, nil, neutron.OverlappingAllocationPools(pools[i], pools[j], p)
			}
		}
	}
	if gateway != nil {
		for _, pool := range pools {
			if pool.Start.Compare(*gateway) <= 0 && gateway.Compare(pool.End) <= 0 {
				return nil, nil, neutron.GatewayConflictWithAllocationPools(*gateway, pool)
			}
		}
	}
	return gateway, pools, nil
}

// CheckDHCPCIDR is what Neutron requires of a subnet that gets DHCP: room
// for a server, and not a multicast, loopback or 0.0.0.0 range.
func CheckDHCPCIDR(version int, p netip.Prefix) error {
	if (version == 4 && p.Bits() > 30) || (version == 6 && p.Bits() > 126) {
		return neutron.InvalidInput("Subnet has a prefix length that is incompatible with DHCP service enabled")
	}
	a := p.Masked().Addr()
	switch {
	case a.IsMulticast():
		return neutron.InvalidInput("Multicast IP subnet is not supported if enable_dhcp is True")
	case a.IsLoopback():
		return neutron.InvalidInput("Loopback IP subnet is not supported if enable_dhcp is True")
	case version == 4 && a == netip.IPv4Unspecified():
		// Neutron's message ends with a period of its own.
		return neutron.InvalidInput("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.")
	}
	return nil
}

// ValidIP is Neutron's check_subnet_ip: the address is in the CIDR and,
// for IPv4, neither its network nor its broadcast address; for IPv6 the
// subnet-router anycast address only for router ports or ports without an
// owner.
func ValidIP(cidr netip.Prefix, ip netip.Addr, owner string) bool {
	if !cidr.Contains(ip) {
		return false
	}
	first, last := rangeOf(cidr)
	if ip.Is4() {
		return ip != first && ip != last
	}
	return owner == "" || neutron.IsRouterPort(owner) || ip != first
}

// rangeOf returns the first and last address of a prefix.
func rangeOf(p netip.Prefix) (netip.Addr, netip.Addr) {
	first := p.Masked().Addr()
	b := first.AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := host
		if n > 8 {
			n = 8
		}
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	last, _ := netip.AddrFromSlice(b)
	return first, last
}

// excludeAddr splits a pool around an address (the gateway).
func excludeAddr(p neutron.Pool, a *netip.Addr) []neutron.Pool {
	if a == nil || a.Less(p.Start) || p.End.Less(*a) {
		return []neutron.Pool{p}
	}
	var out []neutron.Pool
	if p.Start.Less(*a) {
		out = append(out, neutron.Pool{Start: p.Start, End: a.Prev()})
	}
	if a.Less(p.End) {
		out = append(out, neutron.Pool{Start: a.Next(), End: p.End})
	}
	return out
}
