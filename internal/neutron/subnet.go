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

// CheckSubnetFamilies checks that a subnet's DNS servers and host routes
// (as the request gives them; nil: not given) are of its IP version, with
// Neutron's messages.
func CheckSubnetFamilies(version int, dns []Nameserver, routes []RouteRequest) error {
	mismatch := func(name, v string) error {
		return InvalidInput(fmt.Sprintf("%s '%s' does not match the ip_version '%d'", name, v, version))
	}
	wrong := func(a netip.Addr) bool { return a.Is4() != (version == 4) }
	for _, ns := range dns {
		if wrong(ns.Addr) {
			return mismatch("dns_nameserver", ns.Text)
		}
	}
	for _, r := range routes {
		if wrong(r.Nexthop) {
			return mismatch("nexthop", r.NexthopText)
		}
		if wrong(r.Destination.Addr()) {
			return mismatch("destination", r.DestinationText)
		}
	}
	return nil
}

// SubnetRequest is a validated subnet create or update.
type SubnetRequest struct {
	Request
	NetworkID         string
	Name, Description Opt[string]
	IPVersion         int
	// CIDR is unset when the body gives none (Neutron would take one
	// from a subnet pool).
	CIDR                        Opt[netip.Prefix]
	EnableDHCP                  Opt[bool]
	IPv6RAMode, IPv6AddressMode *string
	// GatewayIP set with a nil address: no gateway.
	GatewayIP       Opt[*netip.Addr]
	AllocationPools Opt[[]PoolRequest]
	DNSNameservers  Opt[[]Nameserver]
	HostRoutes      Opt[[]RouteRequest]
}

// PoolRequest is an allocation pool as a request gives it; Neutron's
// messages repeat the text.
type PoolRequest struct {
	Start, End         netip.Addr
	StartText, EndText string
}

// PoolRequestOf is the request that gives p again.
func PoolRequestOf(p Pool) PoolRequest {
	return PoolRequest{Start: p.Start, End: p.End, StartText: p.Start.String(), EndText: p.End.String()}
}

// Nameserver is a DNS server's address and the text the request gave.
type Nameserver struct {
	Addr netip.Addr
	Text string
}

// RouteRequest is a host route and the text the request gave.
type RouteRequest struct {
	Destination                  netip.Prefix
	Nexthop                      netip.Addr
	DestinationText, NexthopText string
}

// Route is the host route stored: the destination with host bits cleared.
func (r RouteRequest) Route() HostRoute {
	return HostRoute{Destination: FormatCIDR(r.Destination.Masked()), Nexthop: r.Nexthop.String()}
}

func decodeSubnet(v values, head Request) SubnetRequest {
	req := SubnetRequest{
		Request: head, NetworkID: v.str("network_id").V, Name: v.str("name"), Description: v.str("description"),
		EnableDHCP: v.boolean("enable_dhcp"), IPv6RAMode: v.optStr("ipv6_ra_mode"), IPv6AddressMode: v.optStr("ipv6_address_mode"),
	}
	req.IPVersion, _ = v["ip_version"].(int)
	if s, ok := v["cidr"].(string); ok {
		p, _ := ParseCIDR(s)
		req.CIDR = Opt[netip.Prefix]{p, true}
	}
	switch g := v["gateway_ip"].(type) {
	case nil:
		if v.has("gateway_ip") {
			req.GatewayIP.Set = true
		}
	case string:
		a, _ := netip.ParseAddr(g)
		req.GatewayIP = Opt[*netip.Addr]{&a, true}
	}
	if list, ok := v.list("allocation_pools"); ok {
		pools := make([]PoolRequest, 0, len(list))
		for _, it := range list {
			m := it.(map[string]any)
			var p PoolRequest
			p.StartText, p.EndText = m["start"].(string), m["end"].(string)
			p.Start, _ = netip.ParseAddr(p.StartText)
			p.End, _ = netip.ParseAddr(p.EndText)
			pools = append(pools, p)
		}
		req.AllocationPools = Opt[[]PoolRequest]{pools, true}
	}
	if list, ok := v.list("dns_nameservers"); ok {
		dns := make([]Nameserver, 0, len(list))
		for _, it := range list {
			s := it.(string)
			a, _ := netip.ParseAddr(s)
			dns = append(dns, Nameserver{Addr: a, Text: s})
		}
		req.DNSNameservers = Opt[[]Nameserver]{dns, true}
	}
	if list, ok := v.list("host_routes"); ok {
		routes := make([]RouteRequest, 0, len(list))
		for _, it := range list {
			m := it.(map[string]any)
			r := RouteRequest{DestinationText: m["destination"].(string), NexthopText: m["nexthop"].(string)}
			r.Destination, _ = ParseCIDR(r.DestinationText)
			r.Nexthop, _ = netip.ParseAddr(r.NexthopText)
			routes = append(routes, r)
		}
		req.HostRoutes = Opt[[]RouteRequest]{routes, true}
	}
	return req
}

// Subnets validates subnet bodies.
var Subnets = &Kind[SubnetRequest]{Resource: SubnetResource, Bulk: true, decode: decodeSubnet}

// Subnet errors.

func SubnetNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "SubnetNotFound", "Subnet %s could not be found.", id)
}

func SubnetInUse(id string) *Error {
	return newErr(http.StatusConflict, "SubnetInUse",
		"Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
}

// InvalidAllocationPool prints the pool as the request gave it (Neutron
// prints the dict).
func InvalidAllocationPool(start, end string) *Error {
	return newErr(http.StatusBadRequest, "InvalidAllocationPool", "The allocation pool {'start': '%s', 'end': '%s'} is not valid.", start, end)
}

func OutOfBoundsAllocationPool(pool Pool, cidr netip.Prefix) *Error {
	return newErr(http.StatusBadRequest, "OutOfBoundsAllocationPool",
		"The allocation pool %s spans beyond the subnet cidr %s.", pool, FormatCIDR(cidr))
}

func OverlappingAllocationPools(a, b Pool, cidr netip.Prefix) *Error {
	return newErr(http.StatusConflict, "OverlappingAllocationPools",
		"Found overlapping allocation pools: %s %s for subnet %s.", a, b, FormatCIDR(cidr))
}

func GatewayConflictWithAllocationPools(gateway netip.Addr, pool Pool) *Error {
	return newErr(http.StatusConflict, "GatewayConflictWithAllocationPools",
		"Gateway ip %s conflicts with allocation pool %s.", gateway, pool)
}

// DNSNameServersExhausted and HostRoutesExhausted name the subnet ("new
// subnet" on create, as Neutron does).
func DNSNameServersExhausted(subnet string) *Error {
	return newErr(http.StatusBadRequest, "DNSNameServersExhausted",
		"Unable to complete operation for %s. The number of DNS nameservers exceeds the limit %d.", subnet, MaxDNSNameservers)
}

func HostRoutesExhausted(subnet string) *Error {
	return newErr(http.StatusBadRequest, "HostRoutesExhausted",
		"Unable to complete operation for %s. The number of host routes exceeds the limit %d.", subnet, MaxHostRoutes)
}
