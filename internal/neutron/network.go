package neutron

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Network types moat supports (ML2 type drivers).
const (
	NetTypeFlat  = "flat"
	NetTypeVLAN  = "vlan"
	NetTypeVXLAN = "vxlan"
	NetTypeLocal = "local"

	MaxVLAN = 4094
	MaxVNI  = 1<<24 - 1
)

// Network is an L2 network.
type Network struct {
	ID                  string
	ProjectID           string
	Name                string
	Description         string
	AdminStateUp        bool
	Status              string
	Shared              bool
	MTU                 int
	PortSecurityEnabled bool
	NetworkType         string
	PhysicalNetwork     *string
	SegmentationID      *int
	StandardAttrs
	// Subnets are the ids of the network's subnets, sorted.
	Subnets []string
}

// Range is an inclusive range of segmentation ids.
type Range struct{ Min, Max int }

// NetworkConfig is the operator's ML2 configuration: which network types
// exist, which physical networks and id ranges they may use.
type NetworkConfig struct {
	// TenantNetworkType is what a network gets when its creator names no
	// provider type (Neutron's tenant_network_types, first entry).
	TenantNetworkType string
	// VNIRanges are the VXLAN ids tenant networks are allocated from.
	VNIRanges []Range
	// VLANRanges maps physical networks usable for VLANs to the ids tenant
	// networks may be allocated from (none: provider networks only).
	VLANRanges map[string][]Range
	// FlatNetworks are the physical networks usable for flat networks;
	// "*" allows any.
	FlatNetworks []string
	// PhysnetMTU is the MTU of the physical network (global_physnet_mtu).
	PhysnetMTU int
}

// DefaultNetworkConfig matches Neutron's defaults with VXLAN tenant networks.
func DefaultNetworkConfig() NetworkConfig {
	return NetworkConfig{
		TenantNetworkType: NetTypeVXLAN,
		VNIRanges:         []Range{{1, 1000}},
		VLANRanges:        map[string][]Range{},
		FlatNetworks:      []string{"*"},
		PhysnetMTU:        1500,
	}
}

// ParseRanges parses "1:1000,2000:2100".
func ParseRanges(s string, max int) ([]Range, error) {
	var out []Range
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		r, err := parseRange(part, max)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRange(s string, max int) (Range, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return Range{}, fmt.Errorf("range %q: want MIN:MAX", s)
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo < 1 || hi < lo || hi > max {
		return Range{}, fmt.Errorf("range %q: want 1 <= MIN <= MAX <= %d", s, max)
	}
	return Range{lo, hi}, nil
}

// ParseVLANRanges parses Neutron's network_vlan_ranges:
// "physnet1:100:199,physnet2" (a physnet without ids is for provider
// networks only).
func ParseVLANRanges(s string) (map[string][]Range, error) {
	out := map[string][]Range{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, rest, hasRange := strings.Cut(part, ":")
		if name == "" {
			return nil, fmt.Errorf("VLAN range %q: missing physical network", part)
		}
		if _, ok := out[name]; !ok {
			out[name] = nil
		}
		if hasRange {
			r, err := parseRange(rest, MaxVLAN)
			if err != nil {
				return nil, fmt.Errorf("VLAN range %q: %w", part, err)
			}
			out[name] = append(out[name], r)
		}
	}
	return out, nil
}

// MTU is the MTU a network of this type gets (VXLAN loses 50 bytes to its
// encapsulation over IPv4, as Neutron computes it).
func (c NetworkConfig) MTU(networkType string) int {
	if networkType == NetTypeVXLAN {
		return c.PhysnetMTU - 50
	}
	return c.PhysnetMTU
}

func (c NetworkConfig) flatAllowed(physnet string) bool {
	for _, f := range c.FlatNetworks {
		if f == "*" || f == physnet {
			return true
		}
	}
	return false
}

// SegmentRequest is what a create asks for; empty fields are to be chosen.
type SegmentRequest struct {
	NetworkType     string
	PhysicalNetwork string
	SegmentationID  *int
}

// ValidateSegment checks a provider request against the configuration, with
// Neutron's messages, and fills in the tenant network type when none is
// given. It does not check that ids are free (the store does).
func (c NetworkConfig) ValidateSegment(req SegmentRequest) (SegmentRequest, error) {
	if req.NetworkType == "" {
		if req.PhysicalNetwork != "" || req.SegmentationID != nil {
			return req, InvalidInput("network_type required")
		}
		req.NetworkType = c.TenantNetworkType
		return req, nil
	}
	switch req.NetworkType {
	case NetTypeFlat:
		if req.SegmentationID != nil {
			return req, InvalidInput("segmentation_id prohibited for flat provider network")
		}
		if req.PhysicalNetwork == "" {
			return req, InvalidInput("physical_network required for flat provider network")
		}
		if !c.flatAllowed(req.PhysicalNetwork) {
			return req, InvalidInput(fmt.Sprintf("physical_network '%s' unknown for flat provider network", req.PhysicalNetwork))
		}
	case NetTypeVLAN:
		if req.PhysicalNetwork == "" {
			if req.SegmentationID != nil {
				return req, InvalidInput("segmentation_id requires physical_network for VLAN provider network")
			}
			return req, nil // a tenant VLAN from the configured ranges
		}
		if _, ok := c.VLANRanges[req.PhysicalNetwork]; !ok {
			return req, InvalidInput(fmt.Sprintf("physical_network '%s' unknown for VLAN provider network", req.PhysicalNetwork))
		}
		if req.SegmentationID != nil && (*req.SegmentationID < 1 || *req.SegmentationID > MaxVLAN) {
			return req, InvalidInput(fmt.Sprintf("segmentation_id out of range (1 through %d)", MaxVLAN))
		}
	case NetTypeVXLAN:
		if req.PhysicalNetwork != "" {
			return req, InvalidInput("provider:physical_network specified for vxlan network")
		}
		if req.SegmentationID != nil && (*req.SegmentationID < 1 || *req.SegmentationID > MaxVNI) {
			return req, InvalidInput(fmt.Sprintf("segmentation_id out of range (1 through %d)", MaxVNI))
		}
	case NetTypeLocal:
		if req.PhysicalNetwork != "" {
			return req, InvalidInput("provider:physical_network specified for local network")
		}
		if req.SegmentationID != nil {
			return req, InvalidInput("provider:segmentation_id specified for local network")
		}
	default:
		return req, InvalidInput(fmt.Sprintf("network_type value '%s' not supported", req.NetworkType))
	}
	return req, nil
}

// TenantRanges returns the physical network and id ranges new segments of
// a type are allocated from, in a stable order.
func (c NetworkConfig) TenantRanges(networkType, physnet string) []struct {
	Physnet string
	Range   Range
} {
	type pr = struct {
		Physnet string
		Range   Range
	}
	var out []pr
	switch networkType {
	case NetTypeVXLAN:
		for _, r := range c.VNIRanges {
			out = append(out, pr{"", r})
		}
	case NetTypeVLAN:
		names := make([]string, 0, len(c.VLANRanges))
		for n := range c.VLANRanges {
			if physnet == "" || n == physnet {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			for _, r := range c.VLANRanges[n] {
				out = append(out, pr{n, r})
			}
		}
	}
	return out
}

// Network errors.

func NetworkNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "NetworkNotFound", "Network %s could not be found.", id)
}

// NetworkInUse names the ports that keep the network, as Neutron does.
func NetworkInUse(id string, ports []string) *Error {
	return newErr(http.StatusConflict, "NetworkInUse",
		"Unable to complete operation on network %s. There are one or more ports still in use on the network, id for these ports is: %s.",
		id, strings.Join(ports, ","))
}

func NoNetworkAvailable() *Error {
	return newErr(http.StatusServiceUnavailable, "NoNetworkAvailable",
		"Unable to create the network. No tenant network is available for allocation.")
}

func FlatNetworkInUse(physnet string) *Error {
	return newErr(http.StatusConflict, "FlatNetworkInUse",
		"Unable to create the flat network. Physical network %s is in use.", physnet)
}

func VlanIDInUse(id int, physnet string) *Error {
	return newErr(http.StatusConflict, "VlanIdInUse",
		"Unable to create the network. The VLAN %d on physical network %s is in use.", id, physnet)
}

func TunnelIDInUse(id int) *Error {
	return newErr(http.StatusConflict, "TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", id)
}

func validateOptionalInt(v any) error {
	if v == nil {
		return nil
	}
	if _, ok := v.(int64); !ok {
		return reasonf("'%s' is not an integer", PyStr(v))
	}
	return nil
}

// convertOptionalInt converts JSON numbers and numeric strings to int64,
// leaving anything else for the validator to refuse.
func convertOptionalInt(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if n, ok := PyInt(v); ok {
		return n, nil
	}
	return v, nil
}

func validateOptionalString(maxLen int) func(any) error {
	return func(v any) error {
		if v == nil {
			return nil
		}
		return ValidateString(maxLen)(v)
	}
}

// NetworkResource is the networks attribute map with the provider,
// port-security, MTU and standard attribute extensions.
var NetworkResource = &Resource{
	Singular: "network",
	Plural:   "networks",
	Attrs: append([]Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "name", AllowPost: true, AllowPut: true, Default: "", HasDefault: true, Validate: ValidateString(NameMaxLen), Visible: true, Filter: true, SortKey: true},
		{Name: "subnets", Visible: true},
		{Name: "admin_state_up", AllowPost: true, AllowPut: true, Default: true, HasDefault: true, Convert: ConvertToBoolean, Visible: true, Filter: true, SortKey: true},
		{Name: "status", Visible: true, Filter: true, SortKey: true},
		projectAttr("tenant_id"),
		{Name: "shared", AllowPost: true, AllowPut: true, Default: false, HasDefault: true, Convert: ConvertToBoolean, Visible: true, Filter: true},
		{Name: "mtu", AllowPost: true, AllowPut: true, HasDefault: true, Convert: convertOptionalInt, Validate: validateOptionalInt, Visible: true, Filter: true, SortKey: true},
		{Name: "port_security_enabled", AllowPost: true, AllowPut: true, Default: true, HasDefault: true, Convert: ConvertToBoolean, Visible: true, Filter: true},
		{Name: "provider:network_type", AllowPost: true, AllowPut: true, HasDefault: true, Validate: validateOptionalString(255), Visible: true, Filter: true},
		{Name: "provider:physical_network", AllowPost: true, AllowPut: true, HasDefault: true, Validate: validateOptionalString(64), Visible: true, Filter: true},
		{Name: "provider:segmentation_id", AllowPost: true, AllowPut: true, HasDefault: true, Convert: convertOptionalInt, Validate: validateOptionalInt, Visible: true, Filter: true},
		{Name: "router:external", Visible: true},
		{Name: "availability_zone_hints", Visible: true},
		{Name: "availability_zones", Visible: true},
		{Name: "ipv4_address_scope", Visible: true},
		{Name: "ipv6_address_scope", Visible: true},
		projectAttr("project_id"),
	}, standardAttrs(true)...),
}

// NetworkRequest is a validated network create or update.
type NetworkRequest struct {
	Request
	Name, Description                         Opt[string]
	AdminStateUp, Shared, PortSecurityEnabled Opt[bool]
	// MTU is nil when the body gives none (or null).
	MTU *int
	// Segment is what the provider attributes ask for; ProviderGiven says
	// the body names one of them (even as null: updates refuse them).
	Segment       SegmentRequest
	ProviderGiven bool
}

func decodeNetwork(v values, head Request) NetworkRequest {
	req := NetworkRequest{
		Request: head, Name: v.str("name"), Description: v.str("description"),
		AdminStateUp: v.boolean("admin_state_up"), Shared: v.boolean("shared"),
		PortSecurityEnabled: v.boolean("port_security_enabled"), MTU: v.optInt("mtu"),
		Segment: SegmentRequest{
			NetworkType:     v.str("provider:network_type").V,
			PhysicalNetwork: v.str("provider:physical_network").V,
			SegmentationID:  v.optInt("provider:segmentation_id"),
		},
	}
	for _, a := range ProviderAttrs {
		req.ProviderGiven = req.ProviderGiven || v.has(a)
	}
	return req
}

// ProviderAttrs are the provider extension's attributes.
var ProviderAttrs = []string{"provider:network_type", "provider:physical_network", "provider:segmentation_id"}

// Networks validates network bodies.
var Networks = &Kind[NetworkRequest]{Resource: NetworkResource, Bulk: true, decode: decodeNetwork}
