package firewall

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/moat-sg/moat/internal/neutron"
)

// address is a remote address: a group member or an address group entry.
type address struct {
	prefix netip.Prefix // as stored: host bits kept, a bare address is a host prefix
	bare   bool         // stored without a prefix length
}

// addressList is a remote group's members or an address group's addresses
// in the forms the compiler needs.
type addressList struct {
	// byFamily holds the addresses in the order Neutron's reference
	// harness expands them without ipsets, by (address, prefix length).
	// (Neutron itself uses Python set order there, which is arbitrary.)
	byFamily [2][]address
	// setEntries are the ipset entries per family, see IPSet.Members.
	setEntries [2][]string
}

func parseAddresses(raw []string) (*addressList, error) {
	l := &addressList{}
	for _, s := range raw {
		p, err := neutron.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("bad address %q", s)
		}
		a := address{prefix: p, bare: !containsSlash(s)}
		fam := v4
		if p.Addr().Is6() {
			fam = v6
		}
		l.byFamily[fam] = append(l.byFamily[fam], a)
	}
	for fam := range l.byFamily {
		as := l.byFamily[fam]
		slices.SortStableFunc(as, func(x, y address) int {
			if c := x.prefix.Addr().Compare(y.prefix.Addr()); c != 0 {
				return c
			}
			return x.prefix.Bits() - y.prefix.Bits()
		})
		l.setEntries[fam] = setEntries(as)
	}
	return l, nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// setEntries converts addresses to ipset hash:net entries as `ipset list
// -sorted` prints them. ipset cannot hold a /0, so Neutron stores two /1s.
func setEntries(as []address) []string {
	var es []netip.Prefix
	for _, a := range as {
		p := a.prefix.Masked()
		if p.Bits() == 0 {
			b := p.Addr().AsSlice()
			b[0] |= 0x80
			hi, _ := netip.AddrFromSlice(b)
			es = append(es, netip.PrefixFrom(p.Addr(), 1), netip.PrefixFrom(hi, 1))
			continue
		}
		es = append(es, p)
	}
	slices.SortFunc(es, func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return y.Bits() - x.Bits() // ipset -sorted: longer prefix first
	})
	es = slices.Compact(es)
	out := make([]string, len(es))
	for i, p := range es {
		if p.IsSingleIP() {
			out[i] = p.Addr().String()
		} else {
			out[i] = p.String()
		}
	}
	return out
}
