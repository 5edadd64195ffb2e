package neutron

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
)

// Port statuses and binding values.
const (
	PortStatusDown   = "DOWN"
	PortStatusActive = "ACTIVE"
	// PortStatusError is what a host agent reports for a port it cannot
	// enforce (Port.StatusReason says why); the port passes no traffic.
	PortStatusError = "ERROR"

	VIFTypeUnbound = "unbound"
	VIFTypeOVS     = "ovs"

	VNICNormal = "normal"

	DeviceOwnerDHCP = "network:dhcp"

	MaxAllowedAddressPairs = 10
)

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string
	IPAddress netip.Addr
}

// AddressPair is an extra (IP or CIDR, MAC) a port may send from.
type AddressPair struct {
	IPAddress  string // an address or a CIDR, as given (normalised)
	MACAddress string
}

// Port is a VM's (or a service's) attachment to a network.
type Port struct {
	ID                  string
	ProjectID           string
	NetworkID           string
	Name                string
	Description         string
	MACAddress          string
	AdminStateUp        bool
	Status              string
	StatusReason        string // why the host's agent reported Status ERROR; "" otherwise
	DeviceID            string
	DeviceOwner         string
	FixedIPs            []FixedIP
	AllowedAddressPairs []AddressPair
	SecurityGroups      []string // sorted ids
	PortSecurityEnabled bool
	HostID              string
	VNICType            string
	Profile             map[string]any
	VIFType             string
	StandardAttrs
}

// IsTrustedOwner reports whether a device owner is one Neutron trusts
// (neutron_lib's is_port_trusted: the network: prefix, which only the
// network's owner may set): such ports get no default security group and
// port security off.
func IsTrustedOwner(owner string) bool {
	return strings.HasPrefix(owner, "network:")
}

// routerPortOwners are neutron_lib's ROUTER_PORT_OWNERS.
var routerPortOwners = map[string]bool{
	"network:router_interface": true, "network:ha_router_replicated_interface": true,
	"network:router_interface_distributed": true, "network:router_centralized_snat": true,
	"network:router_gateway": true,
}

// IsRouterPort reports whether a device owner is a router's (neutron_lib's
// ROUTER_PORT_OWNERS): such a port may hold an IPv6 subnet's
// subnet-router anycast address.
func IsRouterPort(owner string) bool { return routerPortOwners[owner] }

// IsRouterInterface reports whether a device owner is a router's interface
// (neutron_lib's ROUTER_INTERFACE_OWNERS_SNAT): such ports do not get
// SLAAC addresses by themselves.
func IsRouterInterface(owner string) bool {
	return routerPortOwners[owner] && owner != "network:router_gateway"
}

// ParseMAC parses a 48-bit MAC address.
func ParseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("'%s' is not a valid MAC address", s)
	}
	return hw, nil
}

// ConvertMAC is convert_to_sanitized_mac_address: lower case, colons.
func ConvertMAC(v any) (any, error) {
	if s, ok := v.(string); ok {
		if hw, err := ParseMAC(s); err == nil {
			return hw.String(), nil
		}
	}
	return v, nil
}

func validateMAC(v any) error {
	if IsNotSpecified(v) {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return reasonf("'%s' is not a valid MAC address", PyStr(v))
	}
	hw, err := ParseMAC(s)
	if err != nil {
		return reasonf("'%s' is not a valid MAC address", s)
	}
	if hw[0]&1 == 1 || s == "00:00:00:00:00:00" {
		return reasonf("'%s' is not a valid MAC address", s)
	}
	return nil
}

func validateFixedIPs(v any) error {
	if IsNotSpecified(v) {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return reasonf("Invalid data format for fixed IP: '%s'", PyStr(v))
	}
	seen := map[string]bool{}
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return reasonf("Invalid data format for fixed IP: '%s'", PyStr(it))
		}
		for k, val := range m {
			switch k {
			case "ip_address":
				if err := validateIP(val); err != nil {
					return err
				}
				s := val.(string)
				if seen[s] {
					return reasonf("Duplicate IP address '%s'", s)
				}
				seen[s] = true
			case "subnet_id":
				if err := ValidateUUID(val); err != nil {
					return err
				}
			default:
				return reasonf("Invalid data format for fixed IP: '%s'", PyStr(it))
			}
		}
	}
	return nil
}

func validateSecurityGroupIDs(v any) error {
	if IsNotSpecified(v) {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return reasonf("'%s' is not a list", PyStr(v))
	}
	seen := map[string]bool{}
	for _, it := range list {
		s, ok := it.(string)
		if !ok || !IsUUIDLike(s) {
			return reasonf("'%s' is not a valid UUID", PyStr(it))
		}
		if seen[s] {
			return reasonf("Duplicate items in the list: '%s'", s)
		}
		seen[s] = true
	}
	return nil
}

// validateAddressPairs is neutron-lib's _validate_allowed_address_pairs,
// checks, order and answers: most refusals are plain HTTPBadRequest
// messages, a non-dict item is a Reason.
func validateAddressPairs(v any) error {
	if IsNotSpecified(v) {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return BadRequest("Allowed address pairs must be a list.")
	}
	if len(list) > MaxAllowedAddressPairs {
		return newErr(http.StatusBadRequest, "AllowedAddressPairExhausted",
			"The number of allowed address pair exceeds the maximum %d.", MaxAllowedAddressPairs)
	}
	seen := map[string]bool{}
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return reasonf("'%s' is not a dictionary", PyStr(it))
		}
		mac, hasMAC := m["mac_address"]
		if hasMAC {
			if err := validateMAC(mac); err != nil {
				return BadRequest("%s", err.Error())
			}
		}
		ip, hasIP := m["ip_address"]
		if !hasIP {
			return newErr(http.StatusBadRequest, "AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address")
		}
		macText := "None"
		if hasMAC {
			macText = PyStr(mac)
		}
		key := macText + " " + PyStr(ip)
		if seen[key] {
			return DuplicateAddressPair(macText, PyStr(ip))
		}
		seen[key] = true
		var unknown []string
		for k := range m {
			if k != "ip_address" && k != "mac_address" {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return BadRequest("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
		}
		if err := validatePairAddress(ip); err != nil {
			return err
		}
	}
	return nil
}

// validatePairAddress is validate_subnet for a CIDR, validate_ip_address
// for an address, raised as plain HTTPBadRequest messages.
func validatePairAddress(ip any) error {
	s, ok := ip.(string)
	if !ok || !strings.Contains(s, "/") {
		if err := validateIP(ip); err != nil {
			return BadRequest("%s", err.Error())
		}
		return nil
	}
	p, err := ParseCIDR(s)
	if err != nil || strings.TrimSpace(s) != s {
		return BadRequest("'%s' is not a valid IP subnet", s)
	}
	if p.Addr().Is4() && p.String() != s {
		return BadRequest("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, FormatCIDR(p.Masked()))
	}
	return nil
}

var vnicTypes = []string{"normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder",
	"smart-nic", "vdpa", "accelerator-direct", "accelerator-direct-physical", "remote-managed"}

func validateOptionalDict(v any) error {
	if v == nil || IsNotSpecified(v) {
		return nil
	}
	if _, ok := v.(map[string]any); !ok {
		return reasonf("'%s' is not a dictionary", PyStr(v))
	}
	return nil
}

// PortResource is the ports attribute map with the security-group,
// port-security, allowed-address-pairs, binding and standard attribute
// extensions.
var PortResource = &Resource{
	Singular: "port",
	Plural:   "ports",
	Attrs: append([]Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "name", AllowPost: true, AllowPut: true, Default: "", HasDefault: true, Validate: ValidateString(NameMaxLen), Visible: true, Filter: true, SortKey: true},
		{Name: "network_id", AllowPost: true, Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "admin_state_up", AllowPost: true, AllowPut: true, Default: true, HasDefault: true, Convert: ConvertToBoolean, Visible: true, Filter: true, SortKey: true},
		{Name: "mac_address", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Convert: ConvertMAC, Validate: validateMAC, Visible: true, Filter: true, SortKey: true},
		{Name: "fixed_ips", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Validate: validateFixedIPs, Visible: true, Filter: true,
			Keys: []string{"subnet_id", "ip_address"}},
		{Name: "device_id", AllowPost: true, AllowPut: true, Default: "", HasDefault: true, Validate: ValidateString(255), Visible: true, Filter: true, SortKey: true},
		{Name: "device_owner", AllowPost: true, AllowPut: true, Default: "", HasDefault: true, Validate: ValidateString(255), Visible: true, Filter: true, SortKey: true},
		projectAttr("tenant_id"),
		{Name: "status", Visible: true, Filter: true, SortKey: true},
		{Name: "security_groups", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Convert: convertNoneToEmptyList, Validate: validateSecurityGroupIDs, Visible: true, Filter: true},
		{Name: "port_security_enabled", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Convert: convertBoolUnlessNotSpecified, Visible: true, Filter: true},
		{Name: "allowed_address_pairs", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Convert: convertNoneToEmptyList, Validate: validateAddressPairs, Visible: true,
			Keys: []string{"ip_address", "mac_address"}},
		{Name: "extra_dhcp_opts", Visible: true},
		{Name: "binding:vnic_type", AllowPost: true, AllowPut: true, Default: VNICNormal, HasDefault: true, Validate: ValidateValues(vnicTypes...), Visible: true, Filter: true},
		{Name: "binding:host_id", AllowPost: true, AllowPut: true, Default: "", HasDefault: true, Validate: ValidateString(255), Visible: true, Filter: true},
		{Name: "binding:profile", AllowPost: true, AllowPut: true, Default: notSpecified, HasDefault: true, Validate: validateOptionalDict, Visible: true},
		{Name: "binding:vif_type", Visible: true},
		{Name: "binding:vif_details", Visible: true},
		projectAttr("project_id"),
	}, standardAttrs(true)...),
}

// PortRequest is a validated port create or update.
type PortRequest struct {
	Request
	NetworkID                                string
	Name, Description, DeviceID, DeviceOwner Opt[string]
	AdminStateUp                             Opt[bool]
	MACAddress                               Opt[string]
	// FixedIPs unset on create: IPAM chooses.
	FixedIPs Opt[[]IPRequest]
	// SecurityGroups unset on create: the project's default group.
	SecurityGroups      Opt[[]string]
	PortSecurityEnabled Opt[bool]
	AddressPairs        Opt[[]AddressPair]
	HostID, VNICType    Opt[string]
	// Profile is set only by an object (null leaves it as it is).
	Profile Opt[map[string]any]
}

// IPRequest is one entry of a port's fixed_ips: a subnet, an address or
// both.
type IPRequest struct {
	SubnetID string     // "" when not given
	IP       netip.Addr // not valid when not given
	// IPText is the address as the client wrote it, which Neutron's
	// messages repeat.
	IPText string
}

func decodePort(v values, head Request) PortRequest {
	req := PortRequest{
		Request: head, NetworkID: v.str("network_id").V,
		Name: v.str("name"), Description: v.str("description"), DeviceID: v.str("device_id"),
		DeviceOwner: v.str("device_owner"), AdminStateUp: v.boolean("admin_state_up"),
		MACAddress: v.str("mac_address"), PortSecurityEnabled: v.boolean("port_security_enabled"),
		HostID: v.str("binding:host_id"), VNICType: v.str("binding:vnic_type"),
	}
	if list, ok := v.list("fixed_ips"); ok {
		req.FixedIPs = Opt[[]IPRequest]{decodeFixedIPs(list), true}
	}
	if list, ok := v.list("security_groups"); ok {
		ids := make([]string, 0, len(list))
		for _, x := range list {
			ids = append(ids, x.(string))
		}
		req.SecurityGroups = Opt[[]string]{ids, true}
	}
	if list, ok := v.list("allowed_address_pairs"); ok {
		req.AddressPairs = Opt[[]AddressPair]{decodeAddressPairs(list), true}
	}
	if m, ok := v["binding:profile"].(map[string]any); ok {
		req.Profile = Opt[map[string]any]{m, true}
	}
	return req
}

func decodeFixedIPs(list []any) []IPRequest {
	out := make([]IPRequest, 0, len(list))
	for _, it := range list {
		m := it.(map[string]any)
		var r IPRequest
		r.SubnetID, _ = m["subnet_id"].(string)
		if s, ok := m["ip_address"].(string); ok {
			r.IP, _ = netip.ParseAddr(s)
			r.IPText = s
		}
		out = append(out, r)
	}
	return out
}

// decodeAddressPairs normalises validated allowed_address_pairs: an
// address or a CIDR as Neutron prints it, the MAC in canonical form, ""
// when the pair names none (the port's MAC stands for it).
func decodeAddressPairs(list []any) []AddressPair {
	out := make([]AddressPair, 0, len(list))
	for _, it := range list {
		m := it.(map[string]any)
		ip := m["ip_address"].(string)
		p, _ := ParseCIDR(ip)
		s := p.Addr().String()
		if strings.Contains(ip, "/") {
			s = FormatCIDR(p)
		}
		var mac string
		if v, ok := m["mac_address"].(string); ok {
			hw, _ := ParseMAC(v)
			mac = hw.String()
		}
		out = append(out, AddressPair{IPAddress: s, MACAddress: mac})
	}
	return out
}

// Ports validates port bodies.
var Ports = &Kind[PortRequest]{Resource: PortResource, Bulk: true, decode: decodePort}

func convertBoolUnlessNotSpecified(v any) (any, error) {
	if IsNotSpecified(v) {
		return v, nil
	}
	return ConvertToBoolean(v)
}

// SortedIDs returns ids sorted and without duplicates.
func SortedIDs(ids []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Port errors.

func PortNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "PortNotFound", "Port %s could not be found.", id)
}

func IPAddressAlreadyAllocated(ip, subnetID string) *Error {
	return newErr(http.StatusConflict, "IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ip, subnetID)
}

func IPAddressGenerationFailure(networkID string) *Error {
	return newErr(http.StatusConflict, "IpAddressGenerationFailure", "No more IP addresses available on network %s.", networkID)
}

func InvalidIPForNetwork(ip string) *Error {
	return newErr(http.StatusBadRequest, "InvalidIpForNetwork",
		"IP address %s is not a valid IP for any of the subnets on the specified network.", ip)
}

func InvalidIPForSubnet(ip string) *Error {
	return newErr(http.StatusBadRequest, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", ip)
}

func MacAddressInUse(networkID, mac string) *Error {
	return newErr(http.StatusConflict, "MacAddressInUse",
		"Unable to complete operation for network %s. The mac address %s is in use.", networkID, mac)
}

func PortSecurityAndIPRequiredForSecurityGroups() *Error {
	return newErr(http.StatusBadRequest, "PortSecurityAndIPRequiredForSecurityGroups",
		"Port security must be enabled and port must have an IP address in order to use security groups.")
}

func PortSecurityPortHasSecurityGroup() *Error {
	return newErr(http.StatusConflict, "PortSecurityPortHasSecurityGroup",
		"Port has security group associated. Cannot disable port security or IP address until security group is removed.")
}

func AddressPairAndPortSecurityRequired() *Error {
	return newErr(http.StatusConflict, "AddressPairAndPortSecurityRequired",
		"Port Security must be enabled in order to have allowed address pairs on a port.")
}

func MacAddressGenerationFailure(networkID string) *Error {
	return newErr(http.StatusServiceUnavailable, "MacAddressGenerationFailure", "Unable to generate unique mac on network %s.", networkID)
}

func DuplicateAddressPair(mac, ip string) *Error {
	return newErr(http.StatusBadRequest, "DuplicateAddressPairInRequest",
		"Request contains duplicate address pair: mac_address %s ip_address %s.", mac, ip)
}
