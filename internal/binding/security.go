package binding

import (
	"context"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
)

// GroupStore is what the group rules ask the database.
type GroupStore interface {
	// UsableGroup returns the group if project may use it (its own, one
	// shared with it, any for an admin), nil if not or if there is none.
	UsableGroup(ctx context.Context, id, project string) (*neutron.SecurityGroup, error)
	// DefaultSecurityGroupID is the project's default group, "" if none.
	DefaultSecurityGroupID(ctx context.Context, project string) (string, error)
}

// SecureNew gives a new port, whose port security is decided, its groups
// and allowed address pairs: the groups it asks for, else the project's
// default group unless it has no port security or is trusted; groups and
// pairs need port security (ML2 refuses groups only on a port without port
// security; a port without an address may have groups, whatever the
// message says of addresses for plugins that require them).
func SecureNew(ctx context.Context, st GroupStore, p *neutron.Port, req *neutron.PortRequest) error {
	var err error
	sgs := req.SecurityGroups
	switch {
	case sgs.Set && len(sgs.V) > 0 && !p.PortSecurityEnabled:
		return neutron.PortSecurityAndIPRequiredForSecurityGroups()
	case sgs.Set:
		if p.SecurityGroups, err = ResolveGroups(ctx, st, p.ProjectID, sgs.V); err != nil {
			return err
		}
	case p.PortSecurityEnabled && !neutron.IsTrustedOwner(p.DeviceOwner):
		def, err := st.DefaultSecurityGroupID(ctx, p.ProjectID)
		if err != nil {
			return err
		}
		if def != "" {
			p.SecurityGroups = []string{def}
		}
	}
	if p.SecurityGroups == nil {
		p.SecurityGroups = []string{}
	}
	if p.AllowedAddressPairs, err = AddressPairs(req.AddressPairs.V, p.MACAddress); err != nil {
		return err
	}
	return checkPairs(p)
}

// SecureUpdate applies an update's groups and pairs to p, whose port
// security the update has set. Neutron checks a port keeping its groups
// only when port security is off (a port may lose its addresses and keep
// its groups).
func SecureUpdate(ctx context.Context, st GroupStore, p *neutron.Port, req *neutron.PortRequest) error {
	var err error
	if sgs := req.SecurityGroups; sgs.Set {
		if len(sgs.V) > 0 && !p.PortSecurityEnabled {
			return neutron.PortSecurityAndIPRequiredForSecurityGroups()
		}
		if p.SecurityGroups, err = ResolveGroups(ctx, st, p.ProjectID, sgs.V); err != nil {
			return err
		}
	} else if len(p.SecurityGroups) > 0 && !p.PortSecurityEnabled {
		return neutron.PortSecurityPortHasSecurityGroup()
	}
	if req.AddressPairs.Set {
		if p.AllowedAddressPairs, err = AddressPairs(req.AddressPairs.V, p.MACAddress); err != nil {
			return err
		}
	}
	return checkPairs(p)
}

func checkPairs(p *neutron.Port) error {
	if len(p.AllowedAddressPairs) > 0 && !p.PortSecurityEnabled {
		return neutron.AddressPairAndPortSecurityRequired()
	}
	return nil
}

// ResolveGroups checks the groups a port of project asks for: each must
// be usable by the project, and a port cannot mix stateful and stateless
// groups (Neutron's _validate_sgs_for_port). It returns the ids sorted.
func ResolveGroups(ctx context.Context, st GroupStore, project string, ids []string) ([]string, error) {
	var missing []string
	var stateful, stateless bool
	for _, id := range ids {
		g, err := st.UsableGroup(ctx, id, project)
		if err != nil {
			return nil, err
		}
		if g == nil {
			missing = append(missing, id)
			continue
		}
		stateful = stateful || g.Stateful
		stateless = stateless || !g.Stateful
	}
	if len(missing) > 0 {
		return nil, neutron.SecurityGroupNotFound(strings.Join(missing, ", "))
	}
	if stateful && stateless {
		return nil, neutron.SecurityGroupConflict("Cannot apply both stateful and stateless security groups on the same port at the same time")
	}
	return neutron.SortedIDs(ids), nil
}

// AddressPairs are a request's allowed address pairs with the port's MAC
// for those that name none. Pairs that are the same once it fills in are
// refused (Neutron's database refuses the second row and answers
// DuplicateAddressPairInRequest).
func AddressPairs(req []neutron.AddressPair, portMAC string) ([]neutron.AddressPair, error) {
	out := make([]neutron.AddressPair, 0, len(req))
	seen := map[neutron.AddressPair]bool{}
	for _, ap := range req {
		if ap.MACAddress == "" {
			ap.MACAddress = portMAC
		}
		if seen[ap] {
			return nil, neutron.DuplicateAddressPair(ap.MACAddress, ap.IPAddress)
		}
		seen[ap] = true
		out = append(out, ap)
	}
	return out, nil
}
