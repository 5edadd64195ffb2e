package ipam

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/moat-sg/moat/internal/neutron"
)

// Store is what allocation asks the database (the store's transaction
// implements it).
type Store interface {
	// UsedAddresses are the addresses allocated on a subnet; the caller
	// may add to the map it gets.
	UsedAddresses(ctx context.Context, subnetID string) (map[netip.Addr]bool, error)
	// GetSubnet returns a subnet of any network, nil if there is none.
	GetSubnet(ctx context.Context, id string) (*neutron.Subnet, error)
}

// Port is the port addresses are assigned to.
type Port struct {
	NetworkID   string
	MAC         string
	DeviceOwner string
	// Keep are the addresses the port holds already (an update): asking
	// for one of them again is no conflict.
	Keep []neutron.FixedIP
}

// LowestFree is the lowest address of pools that taken does not hold.
// (Neutron picks at random among free addresses; lowest-first makes
// allocation reproducible.)
func LowestFree(pools []neutron.Pool, taken map[netip.Addr]bool) (netip.Addr, bool) {
	for _, pool := range pools {
		for a := pool.Start; a.IsValid() && a.Compare(pool.End) <= 0; a = a.Next() {
			if !taken[a] {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// Allocate takes the lowest free address of a subnet's pools, skipping the
// addresses allocated already and those taken earlier in the request.
func Allocate(ctx context.Context, st Store, sn *neutron.Subnet, taken []neutron.FixedIP) (netip.Addr, error) {
	used, err := st.UsedAddresses(ctx, sn.ID)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, f := range taken {
		used[f.IPAddress] = true
	}
	if a, ok := LowestFree(sn.AllocationPools, used); ok {
		return a, nil
	}
	return netip.Addr{}, neutron.IPAddressGenerationFailure(sn.NetworkID)
}

// EUI64 is the SLAAC address of mac in a /64.
func EUI64(prefix netip.Prefix, mac string) (netip.Addr, error) {
	hw, err := neutron.ParseMAC(mac)
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

// Assign turns a port's requested fixed_ips (unset: none requested) into
// addresses on subnets, the subnets of the port's network, as Neutron's
// IPAM does: explicit addresses must be free and on the network; a subnet
// alone gets a free address; nothing requested gets one address from the
// first IPv4 subnet with room and one from the first stateful IPv6
// subnet; SLAAC subnets always give the EUI-64 address.
func Assign(ctx context.Context, st Store, subnets []neutron.Subnet, port Port, req neutron.Opt[[]neutron.IPRequest]) ([]neutron.FixedIP, error) {
	a := &assignment{ctx: ctx, st: st, subnets: subnets, port: port,
		byID: map[string]*neutron.Subnet{}, kept: map[netip.Addr]bool{}, covered: map[string]bool{}}
	for i := range subnets {
		a.byID[subnets[i].ID] = &subnets[i]
	}
	for _, f := range port.Keep {
		a.kept[f.IPAddress] = true
	}
	var err error
	if req.Set {
		err = a.requested(req.V)
	} else {
		err = a.automatic()
	}
	if err != nil {
		return nil, err
	}
	for i := range subnets {
		if subnets[i].IsSLAAC() && !a.covered[subnets[i].ID] {
			if err := a.eui64(&subnets[i]); err != nil {
				return nil, err
			}
		}
	}
	return a.out, nil
}

// assignment is one Assign call's state.
type assignment struct {
	ctx     context.Context
	st      Store
	subnets []neutron.Subnet
	port    Port
	byID    map[string]*neutron.Subnet
	kept    map[netip.Addr]bool
	out     []neutron.FixedIP
	// covered are the subnets the port has an address on.
	covered map[string]bool
}

func (a *assignment) add(sn *neutron.Subnet, ip netip.Addr) {
	a.out = append(a.out, neutron.FixedIP{SubnetID: sn.ID, IPAddress: ip})
	a.covered[sn.ID] = true
}

func (a *assignment) eui64(sn *neutron.Subnet) error {
	ip, err := EUI64(sn.CIDR, a.port.MAC)
	if err != nil {
		return err
	}
	a.add(sn, ip)
	return nil
}

func (a *assignment) requested(list []neutron.IPRequest) error {
	for _, it := range list {
		if len(a.subnets) == 0 {
			return neutron.InvalidInput("IP allocation requires subnets for network")
		}
		sn, err := a.named(it.SubnetID)
		if err != nil {
			return err
		}
		if !it.IP.IsValid() {
			if err := a.onSubnet(sn); err != nil {
				return err
			}
			continue
		}
		if err := a.address(sn, it); err != nil {
			return err
		}
	}
	return nil
}

// named is the network's subnet with the id a fixed_ips entry names (nil
// when it names none). One that does not exist at all is 404, as Neutron.
func (a *assignment) named(id string) (*neutron.Subnet, error) {
	if id == "" {
		return nil, nil
	}
	if sn := a.byID[id]; sn != nil {
		return sn, nil
	}
	other, err := a.st.GetSubnet(a.ctx, id)
	if err != nil {
		return nil, err
	}
	if other == nil {
		return nil, neutron.SubnetNotFound(id)
	}
	return nil, neutron.InvalidInput(fmt.Sprintf("Failed to create port on network %s, because fixed_ips included invalid subnet %s", a.port.NetworkID, id))
}

// onSubnet gives the port an address on sn, which the request names
// without an address.
func (a *assignment) onSubnet(sn *neutron.Subnet) error {
	if sn == nil {
		return neutron.InvalidInput("IP allocation requires subnet_id or ip_address")
	}
	if sn.IsSLAAC() {
		return a.eui64(sn)
	}
	ip, err := Allocate(a.ctx, a.st, sn, append(append([]neutron.FixedIP{}, a.out...), a.port.Keep...))
	if err != nil {
		return err
	}
	a.add(sn, ip)
	return nil
}

// address gives the port the address it asks for, on sn or, when the
// request names no subnet, on the first subnet it fits.
func (a *assignment) address(sn *neutron.Subnet, it neutron.IPRequest) error {
	ip := it.IP
	if sn == nil {
		for i := range a.subnets {
			if ValidIP(a.subnets[i].CIDR, ip, a.port.DeviceOwner) {
				sn = &a.subnets[i]
				break
			}
		}
		if sn == nil {
			return neutron.InvalidIPForNetwork(it.IPText)
		}
	} else if !ValidIP(sn.CIDR, ip, a.port.DeviceOwner) {
		return neutron.InvalidIPForSubnet(it.IPText)
	}
	if !a.kept[ip] {
		used, err := a.st.UsedAddresses(a.ctx, sn.ID)
		if err != nil {
			return err
		}
		if used[ip] {
			return neutron.IPAddressAlreadyAllocated(ip.String(), sn.ID)
		}
	}
	a.add(sn, ip)
	return nil
}

// automatic gives a port that asks for nothing one address of each family
// (SLAAC subnets aside, which Assign adds): the first subnet of the family
// with room. Only an IPv4 shortage is an error; IPv6 is best effort.
func (a *assignment) automatic() error {
	var v4, v6 bool
	var lastErr error
	for i := range a.subnets {
		sn := &a.subnets[i]
		if sn.IsSLAAC() || (sn.IPVersion == 4 && v4) || (sn.IPVersion == 6 && v6) {
			continue
		}
		ip, err := Allocate(a.ctx, a.st, sn, a.out)
		if err != nil {
			lastErr = err
			continue
		}
		a.add(sn, ip)
		v4, v6 = v4 || sn.IPVersion == 4, v6 || sn.IPVersion == 6
	}
	hasV4Subnet := false
	for i := range a.subnets {
		hasV4Subnet = hasV4Subnet || a.subnets[i].IPVersion == 4
	}
	if hasV4Subnet && !v4 && lastErr != nil {
		return lastErr
	}
	return nil
}
