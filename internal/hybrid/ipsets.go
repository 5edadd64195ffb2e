package hybrid

import "strings"

// Ipsets. Neutron names the set of a remote group (and moat that of an
// address group) "N" + ethertype + id, cut so that the name and the "-n"
// suffix of the temporary set a bulk change swaps in fit the kernel's 31
// characters: NIPv414c032e9-bc0a-4a7e-9f5b-.
const (
	IPSetPrefixV4 = "NIPv4"
	IPSetPrefixV6 = "NIPv6"
	// IPSetSwapSuffix names the temporary set a bulk change fills before
	// the swap.
	IPSetSwapSuffix = "-n"
	// MaxIPSetNameLen is the kernel's limit on set names (IPSET_MAXNAMELEN
	// less the terminating NUL).
	MaxIPSetNameLen = 31
	// maxIPSetName is the longest name IPSetName returns.
	maxIPSetName = MaxIPSetNameLen - len(IPSetSwapSuffix)
)

// IPSetName is the ipset of a remote group (or address group) and
// ethertype ("IPv4" or "IPv6"): "N" + ethertype + id, cut to 29
// characters.
func IPSetName(ethertype, id string) string {
	n := "N" + ethertype + id
	if len(n) > maxIPSetName {
		return n[:maxIPSetName]
	}
	return n
}

// OwnedIPSet reports whether a set belongs to the layout (NIPv4…, NIPv6…).
// Other tools' sets are never read, changed or destroyed.
func OwnedIPSet(name string) bool {
	return strings.HasPrefix(name, IPSetPrefixV4) || strings.HasPrefix(name, IPSetPrefixV6)
}

// IPSetGroupID reads the (cut) group id out of a set name, "" for a set
// the layout does not name.
func IPSetGroupID(name string) string {
	for _, p := range []string{IPSetPrefixV4, IPSetPrefixV6} {
		if id, ok := strings.CutPrefix(name, p); ok {
			return id
		}
	}
	return ""
}

// Conntrack zones the hybrid driver gives ports (neutron/agent/linux/
// ip_conntrack.py): ZONE_START and MAX_CONNTRACK_ZONES.
const (
	ZoneMin = 4097
	ZoneMax = 65535
)
