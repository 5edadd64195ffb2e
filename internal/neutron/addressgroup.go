package neutron

import (
	"cmp"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// LongDescriptionMaxLen is neutron-lib's LONG_DESCRIPTION_FIELD_SIZE, an
// address group's description limit.
const LongDescriptionMaxLen = 1024

// AddressGroup is a project's named set of CIDRs that security group rules
// name as remote_address_group_id (the address-group extension).
type AddressGroup struct {
	ID          string
	ProjectID   string
	Name        string
	Description string
	// Addresses are the group's CIDRs, normalised (host bits cleared),
	// in SortAddresses order.
	Addresses []string
	// Shared is true when an RBAC policy shares the group with the caller.
	Shared bool
	StandardAttrs
}

// AddressGroupResource is the address-groups attribute map. Neutron hides
// shared and the standard attributes (its model registers the extension's
// alias, not the collection, for them), except in the answers of
// add_addresses and remove_addresses (see the API).
var AddressGroupResource = &Resource{
	Singular: "address_group",
	Plural:   "address_groups",
	Attrs: []Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		{Name: "name", AllowPost: true, AllowPut: true, Default: "", HasDefault: true,
			Validate: ValidateString(NameMaxLen), Visible: true, Filter: true, SortKey: true},
		{Name: "description", AllowPost: true, AllowPut: true, Default: "", HasDefault: true,
			Validate: ValidateString(LongDescriptionMaxLen), Visible: true, Filter: true, SortKey: true},
		projectAttr("tenant_id"),
		projectAttr("project_id"),
		{Name: "addresses", AllowPost: true, Default: notSpecified, HasDefault: true,
			Convert: convertNoneToEmptyList, Validate: validateSubnetList, Visible: true},
		{Name: "shared", Convert: ConvertToBoolean},
	},
}

// AddressGroupRequest is a validated address group create or update.
type AddressGroupRequest struct {
	Request
	Name, Description Opt[string]
	// Addresses are the create's CIDRs as given (unset: none given).
	Addresses Opt[[]string]
}

func decodeAddressGroup(v values, head Request) AddressGroupRequest {
	req := AddressGroupRequest{Request: head, Name: v.str("name"), Description: v.str("description")}
	if list, ok := v.list("addresses"); ok {
		addrs := make([]string, len(list))
		for i, a := range list {
			addrs[i] = a.(string) // validateSubnetList let only strings through
		}
		req.Addresses = Opt[[]string]{addrs, true}
	}
	return req
}

// AddressGroups validates address group bodies.
var AddressGroups = &Kind[AddressGroupRequest]{Resource: AddressGroupResource, Bulk: true, decode: decodeAddressGroup}

// validateSubnetList is neutron-lib's validate_subnet_list: a list, no
// item twice, each a subnet as validate_subnet takes it.
func validateSubnetList(v any) error {
	if IsNotSpecified(v) {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return reasonf("'%s' is not a list", PyStr(v))
	}
	seen := map[string]bool{}
	for _, it := range list {
		s := PyStr(it)
		if seen[s] {
			return reasonf("Duplicate items in the list: '%s'", s)
		}
		seen[s] = true
	}
	for _, it := range list {
		if err := validateSubnet(it); err != nil {
			return err
		}
	}
	return nil
}

// validateSubnet is neutron-lib's validate_subnet: a CIDR with a prefix
// length, an IPv4 one spelled as netaddr prints it.
func validateSubnet(v any) error {
	s, ok := v.(string)
	if !ok {
		return reasonf("'%s' is not a valid IP subnet", PyStr(v))
	}
	p, err := ParseCIDR(s)
	if err != nil || strings.TrimSpace(s) != s {
		return reasonf("'%s' is not a valid IP subnet", s)
	}
	if strings.Contains(s, "/") && (p.Addr().Is6() || FormatCIDR(p) == s) {
		return nil
	}
	return reasonf("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, FormatCIDR(p.Masked()))
}

// NormalizeAddresses is what Neutron stores of the addresses of an
// add_addresses or remove_addresses body (or a create's): each parsed as
// netaddr.IPNetwork parses it, host bits cleared, duplicates dropped; in
// SortAddresses order. A value that is not a list, or an item that does
// not parse, is refused as Neutron refuses it (netaddr's AddrFormatError).
func NormalizeAddresses(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		if v == nil {
			return nil, BadRequest("Failed to parse request. Required attribute 'addresses' not specified")
		}
		return nil, BadRequest("Invalid input for addresses. Reason: '%s' is not a list.", PyStr(v))
	}
	var out []string
	seen := map[string]bool{}
	for _, it := range list {
		s, isStr := it.(string)
		p, err := ParseCIDR(s)
		if !isStr || err != nil {
			return nil, newErr(http.StatusBadRequest, "AddrFormatError", "invalid IPNetwork %s", PyStr(it))
		}
		n := FormatCIDR(p.Masked())
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	SortAddresses(out)
	return out, nil
}

// SortAddresses sorts normalised CIDRs: IPv4 before IPv6, then by address
// and prefix length (Neutron answers in database order; moat's is stable).
func SortAddresses(addrs []string) {
	slices.SortFunc(addrs, func(a, b string) int {
		pa, ea := netip.ParsePrefix(a)
		pb, eb := netip.ParsePrefix(b)
		if ea != nil || eb != nil {
			return strings.Compare(a, b)
		}
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(pa.Bits(), pb.Bits())
	})
}

// AddressGroupInUse answers the delete of a group a rule names.
func AddressGroupInUse(id string) *Error {
	return newErr(http.StatusConflict, "AddressGroupInUse",
		"Address group %s is in use on one or more security group rules.", id)
}

// AddressesNotFound answers a remove_addresses naming addresses the group
// does not hold.
func AddressesNotFound(addrs []string, id string) *Error {
	return newErr(http.StatusNotFound, "AddressesNotFound",
		"Addresses %s not found in the address group %s.", pyStrList(addrs), id)
}

// AddressesAlreadyExist answers an add_addresses naming addresses the
// group holds already.
func AddressesAlreadyExist(addrs []string, id string) *Error {
	return newErr(http.StatusBadRequest, "AddressesAlreadyExist",
		"Addresses %s already exist in the address group %s.", pyStrList(addrs), id)
}

// pyStrList prints a list of strings as Python's str(list) does.
func pyStrList(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = pyRepr(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
