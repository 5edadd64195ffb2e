package firewall

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
)

// address is a remote address: a group member or an address group entry.
type address struct {
	prefix netip.Prefix // as stored: host bits kept, a bare address is a host prefix
	raw    string       // the text as stored
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
	// bad are the entries that do not parse, left out (fail closed: an
	// address nobody can have allows nothing), sorted.
	bad []string
}

func parseAddresses(raw []string) *addressList {
	l := &addressList{}
	for _, s := range raw {
		p, err := neutron.ParseCIDR(s)
		if err != nil {
			l.bad = append(l.bad, quoteShort(s))
			continue
		}
		a := address{prefix: p, raw: s}
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
	slices.Sort(l.bad)
	l.bad = slices.Compact(l.bad)
	return l
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
	slices.SortFunc(es, func(x, y netip.Prefix) int { return x.Compare(y) })
	es = slices.Compact(es)
	out := make([]string, len(es))
	for i, p := range es {
		if p.IsSingleIP() {
			out[i] = p.Addr().String()
		} else {
			out[i] = p.String()
		}
	}
	slices.SortFunc(out, compareSetEntries)
	return out
}

// compareSetEntries orders ipset entries as `ipset list -sorted` (ipset
// 7.17) prints them. ipset sorts the printed text, not the addresses: it
// walks both strings taking runs of hex digits as numbers, so "10.0.0.9"
// sorts before "10.0.0.10" but "::/1" before "::5" and "2001:db8::1"
// before "2001:db8::/32". Where one entry has a "/" after a number and the
// other does not, the one without comes first; after a shared "/", the
// longer prefix comes first.
func compareSetEntries(a, b string) int {
	sign := 1
	for a != "" && b != "" {
		na, ra, okA := hexPrefix(a)
		nb, rb, okB := hexPrefix(b)
		if !okA || !okB {
			// No number in front: compare the texts up to the next ':' or
			// ',' by length, then by bytes.
			la, lb := strings.IndexAny(a+":", ":,"), strings.IndexAny(b+":", ":,")
			switch {
			case la == 0 && lb == 0:
				return strings.Compare(a, b)
			case la != lb:
				return cmpInt(la, lb)
			case a[:la] != b[:lb]:
				return strings.Compare(a[:la], b[:lb])
			}
			a, b, sign = a[min(la+1, len(a)):], b[min(lb+1, len(b)):], 1
			continue
		}
		if na != nb {
			return sign * cmpInt(na, nb)
		}
		var sa, sb byte
		if ra != "" {
			sa = ra[0]
		}
		if rb != "" {
			sb = rb[0]
		}
		if sa == '/' || sb == '/' {
			switch {
			case sa == sb:
				sign = -1
			case sa == '/':
				return 1
			default:
				return -1
			}
		}
		a, b = skipOne(ra), skipOne(rb)
		if strings.HasPrefix(a, ":") || strings.HasPrefix(b, ":") {
			switch {
			case strings.HasPrefix(a, ":") && strings.HasPrefix(b, ":"):
				a, b = a[1:], b[1:]
			case strings.HasPrefix(a, ":"):
				return -1
			default:
				return 1
			}
		}
	}
	switch {
	case a != "":
		return 1
	case b != "":
		return -1
	}
	return 0
}

// hexPrefix reads the run of hex digits s starts with.
func hexPrefix(s string) (n int64, rest string, ok bool) {
	i := 0
	for i < len(s) && isHex(s[i]) {
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	n, err := strconv.ParseInt(s[:i], 16, 64)
	if err != nil {
		return 0, s, false
	}
	return n, s[i:], true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func skipOne(s string) string {
	if s == "" {
		return s
	}
	return s[1:]
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
