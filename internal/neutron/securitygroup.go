package neutron

import (
	"time"
)

const (
	// DefaultSecurityGroupName and its description are what Neutron gives the
	// per-project group it creates on first use.
	DefaultSecurityGroupName        = "default"
	DefaultSecurityGroupDescription = "Default security group"

	NameMaxLen        = 255
	DescriptionMaxLen = 255
	ProjectIDMaxLen   = 255

	IPv4 = "IPv4"
	IPv6 = "IPv6"

	Ingress = "ingress"
	Egress  = "egress"
)

// Ethertypes are the ethertypes a rule may have, in Neutron's order.
var Ethertypes = []string{IPv4, IPv6}

// StandardAttrs are the attributes every Neutron resource with standard
// attributes carries (revision, timestamps, tags, description).
type StandardAttrs struct {
	StandardAttrID int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	RevisionNumber int64
	Tags           []string
}

// SecurityGroup is a project's named set of rules.
type SecurityGroup struct {
	ID          string
	ProjectID   string
	Name        string
	Description string
	Stateful    bool
	// Shared is true when an RBAC policy shares the group with the caller.
	Shared bool
	StandardAttrs
	// Rules are the group's rules in creation order, when loaded.
	Rules []SecurityGroupRule
}

// IsDefault reports whether g is its project's default group. Neutron keys
// its protections on the name, which no user can otherwise give a group.
func (g *SecurityGroup) IsDefault() bool { return g.Name == DefaultSecurityGroupName }

// SecurityGroupRule is one whitelist entry. Nil pointers are JSON nulls.
type SecurityGroupRule struct {
	ID              string
	ProjectID       string
	SecurityGroupID string
	Direction       string
	Ethertype       string
	// Protocol is stored as the API normalised it: a lower-case name or
	// the number as the client spelled it ("6", "06"). ProtocolNumber
	// resolves it.
	Protocol             *string
	PortRangeMin         *int
	PortRangeMax         *int
	RemoteIPPrefix       *string
	RemoteGroupID        *string
	RemoteAddressGroupID *string
	// Description is nil for the rules Neutron creates itself (a new
	// group's egress rules, the default group's rules).
	Description *string
	StandardAttrs
}

// NormalizedCIDR is the rule's remote prefix with host bits cleared, as
// Neutron's normalized_cidr field shows it.
func (r *SecurityGroupRule) NormalizedCIDR() *string {
	if r.RemoteIPPrefix == nil {
		return nil
	}
	p, err := ParseCIDR(*r.RemoteIPPrefix)
	if err != nil {
		return nil
	}
	s := p.Masked().String()
	return &s
}

// ProtocolNumber is the IP protocol number of the rule, and false for "any".
func (r *SecurityGroupRule) ProtocolNumber() (int, bool) {
	if r.Protocol == nil {
		return 0, false
	}
	return ProtocolNumber(*r.Protocol)
}

// DefaultRules are the rules Neutron gives a new group: egress to anywhere
// for both ethertypes and, for a project's default group, ingress from the
// group's own members, in Neutron's creation order.
func DefaultRules(sgID, projectID string, isDefault bool) []SecurityGroupRule {
	var rules []SecurityGroupRule
	for _, et := range Ethertypes {
		if isDefault {
			self := sgID
			rules = append(rules, SecurityGroupRule{
				ProjectID: projectID, SecurityGroupID: sgID,
				Direction: Ingress, Ethertype: et, RemoteGroupID: &self,
			})
		}
		rules = append(rules, SecurityGroupRule{
			ProjectID: projectID, SecurityGroupID: sgID,
			Direction: Egress, Ethertype: et,
		})
	}
	return rules
}
