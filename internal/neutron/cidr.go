package neutron

import (
	"errors"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

var errCIDR = errors.New("invalid CIDR")

// ParseCIDR parses an IP prefix with the leniency of Python's
// netaddr.IPNetwork, which Neutron uses: a bare address is a host prefix,
// abbreviated IPv4 ("10/8", "10.1/16") is padded with zeros, octets may
// have leading zeros, and an IPv4 mask may be given as a netmask or a
// hostmask. Host bits are kept, as Neutron keeps them.
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	addrPart, lenPart, hasLen := strings.Cut(s, "/")
	var addr netip.Addr
	if strings.Contains(addrPart, ":") {
		a, err := netip.ParseAddr(addrPart)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errCIDR
		}
		addr = a
	} else {
		a, ok := parseLenientIPv4(addrPart)
		if !ok {
			return netip.Prefix{}, errCIDR
		}
		addr = a
	}
	bitLen := addr.BitLen()
	if !hasLen {
		return netip.PrefixFrom(addr, bitLen), nil
	}
	if n, err := strconv.Atoi(lenPart); err == nil && lenPart != "" && lenPart[0] != '+' && lenPart[0] != '-' {
		if n < 0 || n > bitLen {
			return netip.Prefix{}, errCIDR
		}
		return netip.PrefixFrom(addr, n), nil
	}
	if addr.Is4() {
		if m, ok := parseLenientIPv4(lenPart); ok && strings.Count(lenPart, ".") == 3 {
			if n, ok := maskLen(m); ok {
				return netip.PrefixFrom(addr, n), nil
			}
		}
	}
	return netip.Prefix{}, errCIDR
}

// FormatCIDR prints a prefix as netaddr's str(IPNetwork) does.
func FormatCIDR(p netip.Prefix) string {
	return p.Addr().String() + "/" + strconv.Itoa(p.Bits())
}

func parseLenientIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 1 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return netip.Addr{}, false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return netip.Addr{}, false
			}
		}
		n, _ := strconv.Atoi(p)
		if n > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// maskLen accepts a contiguous netmask (255.255.0.0) or hostmask (0.0.255.255).
func maskLen(m netip.Addr) (int, bool) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if ones := bits.LeadingZeros32(^v); v<<ones == 0 {
		return ones, true
	}
	if zeros := bits.LeadingZeros32(v); ^v<<zeros == 0 {
		return zeros, true
	}
	return 0, false
}
