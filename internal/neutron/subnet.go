package neutron

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// IPv6 address modes.
const (
	IPv6SLAAC           = "slaac"
	IPv6DHCPv6Stateful  = "dhcpv6-stateful"
	IPv6DHCPv6Stateless = "dhcpv6-stateless"

	MaxDNSNameservers = 5
	MaxHostRoutes     = 20
)

// Pool is an inclusive range of addresses a subnet allocates from.
type Pool struct{ Start, End netip.Addr }

func (p Pool) String() string { return p.Start.String() + "-" + p.End.String() }

// HostRoute is a route DHCP hands to instances.
type HostRoute struct {
	Destination string
	Nexthop     string
}

// Subnet is an IP range on a network.
type Subnet struct {
	ID              string
	ProjectID       string
	NetworkID       string
	Name            string
	Description     string
	IPVersion       int
	CIDR            netip.Prefix
	GatewayIP       *netip.Addr
	EnableDHCP      bool
	IPv6RAMode      *string
	IPv6AddressMode *string
	AllocationPools []Pool
	DNSNameservers  []string
	HostRoutes      []HostRoute
	StandardAttrs
}

// IsSLAAC reports whether addresses on the subnet are autoconfigured from
// the MAC (SLAAC or DHCPv6-stateless), so Neutron assigns them itself.
func (s *Subnet) IsSLAAC() bool {
	return s.IPVersion == 6 && s.IPv6AddressMode != nil &&
		(*s.IPv6AddressMode == IPv6SLAAC || *s.IPv6AddressMode == IPv6DHCPv6Stateless)
}

// ConvertCIDRCanonical is convert_cidr_to_canonical_format: host bits are
// cleared ("10.2.0.5/24" is "10.2.0.0/24").
func ConvertCIDRCanonical(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return v, nil
	}
	p, err := ParseCIDR(s)
	if err != nil || !strings.Contains(strings.TrimSpace(s), "/") {
		return v, nil // the validator explains
	}
	return FormatCIDR(p.Masked()), nil
}

func validateSubnetCIDR(v any) error {
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return reasonf("'%s' is not a valid IP subnet", PyStr(v))
	}
	p, err := ParseCIDR(s)
	if err != nil || !strings.Contains(s, "/") {
		return reasonf("'%s' is not a valid IP subnet", s)
	}
	if FormatCIDR(p) != s {
		return reasonf("'%s' isn't a recommended CIDR, '%s' is recommended instead", s, FormatCIDR(p.Masked()))
	}
	return nil
}

// ConvertIPCanonical normalises an address ("2001:DB8::1" is "2001:db8::1").
func ConvertIPCanonical(v any) (any, error) {
	if s, ok := v.(string); ok {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			return a.String(), nil
		}
	}
	return v, nil
}

func validateIPOrNone(v any) error {
	if v == nil {
		return nil
	}
	return validateIP(v)
}

func validateIP(v any) error {
	s, ok := v.(string)
	if !ok {
		return reasonf("'%s' is not a valid IP address", PyStr(v))
	}
	if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
		return reasonf("'%s' is not a valid IP address", s)
	}
	return nil
}

func validateIPPools(v any) error {
	list, ok := v.([]any)
	if !ok {
		return reasonf("Invalid data format for IP pool: '%s'", PyStr(v))
	}
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return reasonf("Invalid data format for IP pool: '%s'", PyStr(it))
		}
		if err := verifyKeys(m, "start", "end"); err != nil {
			return err
		}
		for _, k := range []string{"start", "end"} {
			if err := validateIP(m[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

func verifyKeys(m map[string]any, keys ...string) error {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return reasonf("Expected keys: %s not found in %s", pyRepr(keys), PyStr(m))
		}
	}
	if len(m) != len(keys) {
		return reasonf("Expected keys: %s, found: %s", pyRepr(keys), PyStr(m))
	}
	return nil
}

func validateNameservers(v any) error {
	list, ok := v.([]any)
	if !ok {
		return reasonf("Invalid data format for nameserver: '%s'", PyStr(v))
	}
	seen := map[string]bool{}
	for _, it := range list {
		s, _ := it.(string)
		if err := validateIP(it); err != nil {
			return reasonf("'%s' is not a valid nameserver. %s", PyStr(it), err.Error())
		}
		if seen[s] {
			return reasonf("Duplicate nameserver '%s'", s)
		}
		seen[s] = true
	}
	return nil
}

func validateHostRoutes(v any) error {
	list, ok := v.([]any)
	if !ok {
		return reasonf("Invalid data format for hostroute: '%s'", PyStr(v))
	}
	seen := map[string]bool{}
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return reasonf("Invalid data format for hostroute: '%s'", PyStr(it))
		}
		if err := verifyKeys(m, "destination", "nexthop"); err != nil {
			return err
		}
		d, ok := m["destination"].(string)
		if _, err := ParseCIDR(d); !ok || err != nil || !strings.Contains(d, "/") {
			return reasonf("'%s' is not a valid IP subnet", PyStr(m["destination"]))
		}
		if err := validateIP(m["nexthop"]); err != nil {
			return err
		}
		key := PyStr(m)
		if seen[key] {
			return reasonf("Duplicate hostroute '%s'", key)
		}
		seen[key] = true
	}
	return nil
}

func convertNoneToEmptyList(v any) (any, error) {
	if v == nil {
		return []any{}, nil
	}
	return v, nil
}

func convertIPVersion(v any) (any, error) {
	if n, ok := PyInt(v); ok {
		return int(n), nil
	}
	return nil, InvalidInput(fmt.Sprintf("'%s' is not an integer", PyStr(v)))
}

func validateIPVersion(v any) error {
	if n, _ := v.(int); n == 4 || n == 6 {
		return nil
	}
	return reasonf("%s is not in valid_values", PyStr(v))
}

var ipv6Modes = ValidateValues(IPv6DHCPv6Stateful, IPv6DHCPv6Stateless, IPv6SLAAC)

func validateIPv6Mode(v any) error {
	if v == nil {
		return nil
	}
	return ipv6Modes(v)
}

// SubnetResource is the subnets attribute map.
var SubnetResource = &Resource{
	Singular: "subnet",
	Plural:   "subnets",
	Attrs: append([]Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "name", AllowPost: true, AllowPut: true, Default: "", HasDefault: true, Validate: ValidateString(NameMaxLen), Visible: true, Filter: true, SortKey: true},
		{Name: "ip_version", AllowPost: true, Convert: convertIPVersion, Validate: validateIPVersion, Visible: true, Filter: true, SortKey: true},
		{Name: "network_id", AllowPost: true, Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "subnetpool_id", AllowPost: true, HasDefault: true, Validate: validateSubnetpoolNone, Visible: true, Filter: true, SortKey: true},
		{Name: "cidr", AllowPost: true, HasDefault: true, Convert: ConvertCIDRCanonical, Validate: validateSubnetCIDR, Visible: true, Filter: true, SortKey: true},
		{Name: "gateway_ip", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Convert: ConvertIPCanonical, Validate: skipNotSpecified(validateIPOrNone), Visible: true, Filter: true, SortKey: true},
		{Name: "allocation_pools", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Validate: skipNotSpecified(validateIPPools), Visible: true},
		{Name: "dns_nameservers", AllowPost: true, AllowPut: true, Default: []any{}, HasDefault: true, Convert: convertNoneToEmptyList, Validate: validateNameservers, Visible: true},
		{Name: "host_routes", AllowPost: true, AllowPut: true, Default: []any{}, HasDefault: true, Convert: convertNoneToEmptyList, Validate: validateHostRoutes, Visible: true},
		projectAttr("tenant_id"),
		{Name: "enable_dhcp", AllowPost: true, AllowPut: true, Default: true, HasDefault: true, Convert: ConvertToBoolean, Visible: true, Filter: true, SortKey: true},
		{Name: "ipv6_ra_mode", AllowPost: true, HasDefault: true, Validate: validateIPv6Mode, Visible: true, Filter: true, SortKey: true},
		{Name: "ipv6_address_mode", AllowPost: true, HasDefault: true, Validate: validateIPv6Mode, Visible: true, Filter: true, SortKey: true},
		{Name: "service_types", Visible: true},
		projectAttr("project_id"),
	}, standardAttrs(true)...),
}

// notSpecified marks an attribute the client did not give, where Neutron
// distinguishes that from null (a null gateway_ip means "no gateway").
type notSpecifiedT struct{}

var notSpecified = notSpecifiedT{}

// IsNotSpecified reports whether an attribute was left out of a POST.
func IsNotSpecified(v any) bool { _, ok := v.(notSpecifiedT); return ok }

func skipNotSpecified(f func(any) error) func(any) error {
	return func(v any) error {
		if IsNotSpecified(v) {
			return nil
		}
		return f(v)
	}
}

func validateSubnetpoolNone(v any) error {
	if v == nil {
		return nil
	}
	return reasonf("subnet pools are not supported: '%s'", PyStr(v))
}

// SubnetRequest is a validated subnet create body, before defaults that
// depend on the CIDR.
type SubnetRequest struct {
	IPVersion       int
	CIDR            netip.Prefix
	GatewayIP       any // notSpecified, nil or a string
	Pools           any // notSpecified or []any of {start, end}
	EnableDHCP      bool
	IPv6RAMode      *string
	IPv6AddressMode *string
}

// BuildSubnet applies Neutron's subnet checks and defaults: the CIDR must
// match the IP version, IPv6 modes must agree, DHCP needs room for a server,
// the gateway defaults to the first address and must stay out of the
// pools, pools default to the rest of the range and must lie inside it
// without overlapping.
func BuildSubnet(req SubnetRequest) (gateway *netip.Addr, pools []Pool, err error) {
	p := req.CIDR
	if (req.IPVersion == 4) != p.Addr().Is4() {
		return nil, nil, InvalidInput(fmt.Sprintf("cidr '%s' does not match the ip_version '%d'", FormatCIDR(p), req.IPVersion))
	}
	if req.IPVersion == 4 && req.IPv6RAMode != nil {
		return nil, nil, InvalidInput("ipv6_ra_mode is not valid when ip_version is 4")
	}
	if req.IPVersion == 4 && req.IPv6AddressMode != nil {
		return nil, nil, InvalidInput("ipv6_address_mode is not valid when ip_version is 4")
	}
	if req.IPv6RAMode != nil && req.IPv6AddressMode != nil && *req.IPv6RAMode != *req.IPv6AddressMode {
		return nil, nil, InvalidInput(fmt.Sprintf("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value",
			*req.IPv6RAMode, *req.IPv6AddressMode))
	}
	if req.IPVersion == 6 && !req.EnableDHCP && (req.IPv6RAMode != nil || req.IPv6AddressMode != nil) {
		return nil, nil, InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
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
	switch g := req.GatewayIP.(type) {
	case notSpecifiedT:
		gw := lo
		if req.IPVersion == 6 {
			gw = first
		}
		gateway = &gw
	case nil:
	case string:
		a, _ := netip.ParseAddr(g)
		if a.Is4() != p.Addr().Is4() {
			return nil, nil, InvalidInput(fmt.Sprintf("gateway_ip '%s' does not match the ip_version '%d'", g, req.IPVersion))
		}
		if req.IPVersion == 4 && p.Bits() < 31 && (a == first || a == last) {
			return nil, nil, InvalidInput(fmt.Sprintf("Gateway is not valid on subnet"))
		}
		gateway = &a
	}
	if IsNotSpecified(req.Pools) {
		pools = excludeAddr(Pool{lo, hi}, gateway)
		return gateway, pools, nil
	}
	for _, it := range req.Pools.([]any) {
		m := it.(map[string]any)
		s, _ := netip.ParseAddr(m["start"].(string))
		e, _ := netip.ParseAddr(m["end"].(string))
		pool := Pool{s, e}
		if s.Is4() != p.Addr().Is4() || e.Is4() != p.Addr().Is4() || e.Less(s) {
			// Neutron prints the pool as the request gave it (a dict).
			return nil, nil, newErr(http.StatusBadRequest, "InvalidAllocationPool", "The allocation pool {'start': '%s', 'end': '%s'} is not valid.",
				m["start"], m["end"])
		}
		if !p.Contains(s) || !p.Contains(e) || s == first || (req.IPVersion == 4 && p.Bits() < 31 && e == last) {
			return nil, nil, newErr(http.StatusBadRequest, "OutOfBoundsAllocationPool",
				"The allocation pool %s spans beyond the subnet cidr %s.", pool, FormatCIDR(p))
		}
		pools = append(pools, pool)
	}
	for i := range pools {
		for j := i + 1; j < len(pools); j++ {
			if !(pools[i].End.Less(pools[j].Start) || pools[j].End.Less(pools[i].Start)) {
				return nil, nil, newErr(http.StatusConflict, "OverlappingAllocationPools",
					"Found overlapping allocation pools: %s %s for subnet %s.", pools[i], pools[j], FormatCIDR(p))
			}
		}
	}
	if gateway != nil {
		for _, pool := range pools {
			if pool.Start.Compare(*gateway) <= 0 && gateway.Compare(pool.End) <= 0 {
				return nil, nil, newErr(http.StatusConflict, "GatewayConflictWithAllocationPools",
					"Gateway ip %s conflicts with allocation pool %s.", gateway, pool)
			}
		}
	}
	return gateway, pools, nil
}

// CheckDHCPCIDR is what Neutron requires of a subnet that gets DHCP: room
// for a server, and not a multicast, loopback or 0.0.0.0 range.
func CheckDHCPCIDR(version int, p netip.Prefix) error {
	if (version == 4 && p.Bits() > 30) || (version == 6 && p.Bits() > 126) {
		return InvalidInput("Subnet has a prefix length that is incompatible with DHCP service enabled")
	}
	a := p.Masked().Addr()
	switch {
	case a.IsMulticast():
		return InvalidInput("Multicast IP subnet is not supported if enable_dhcp is True")
	case a.IsLoopback():
		return InvalidInput("Loopback IP subnet is not supported if enable_dhcp is True")
	case version == 4 && a == netip.IPv4Unspecified():
		// Neutron's message ends with a period of its own.
		return InvalidInput("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.")
	}
	return nil
}

// CheckSubnetFamilies checks that a subnet's DNS servers and host routes
// (as the request gave them) are of its IP version, with Neutron's
// messages.
func CheckSubnetFamilies(version int, dns, routes any) error {
	mismatch := func(name, v string) error {
		return InvalidInput(fmt.Sprintf("%s '%s' does not match the ip_version '%d'", name, v, version))
	}
	// wrong reports an address or CIDR of the other family (the
	// validators have checked the syntax).
	wrong := func(v any) bool {
		str, _ := v.(string)
		p, err := ParseCIDR(str)
		return err == nil && p.Addr().Is4() != (version == 4)
	}
	list, _ := dns.([]any)
	for _, it := range list {
		if wrong(it) {
			return mismatch("dns_nameserver", it.(string))
		}
	}
	list, _ = routes.([]any)
	for _, it := range list {
		m, _ := it.(map[string]any)
		for _, k := range []string{"nexthop", "destination"} {
			if wrong(m[k]) {
				return mismatch(k, m[k].(string))
			}
		}
	}
	return nil
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
func excludeAddr(p Pool, a *netip.Addr) []Pool {
	if a == nil || a.Less(p.Start) || p.End.Less(*a) {
		return []Pool{p}
	}
	var out []Pool
	if p.Start.Less(*a) {
		out = append(out, Pool{p.Start, a.Prev()})
	}
	if a.Less(p.End) {
		out = append(out, Pool{a.Next(), p.End})
	}
	return out
}

// EUI64 is the SLAAC address of mac in a /64.
func EUI64(prefix netip.Prefix, mac string) (netip.Addr, error) {
	hw, err := ParseMAC(mac)
	if err != nil {
		return netip.Addr{}, err
	}
	b := prefix.Masked().Addr().As16()
	b[8] = hw[0] ^ 0x02
	b[9], b[10] = hw[1], hw[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b), nil
}

// Subnet errors.

func SubnetNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "SubnetNotFound", "Subnet %s could not be found.", id)
}

func SubnetInUse(id string) *Error {
	return newErr(http.StatusConflict, "SubnetInUse",
		"Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
}
