package firewall

// Names and fixed texts of Neutron 21's hybrid iptables layout.

const (
	// wrap is IptablesManager's wrap prefix: basename(argv[0])[:16] of
	// neutron-openvswitch-agent, plus "-".
	wrap = "neutron-openvswi-"

	chainFilterTop  = "neutron-filter-top" // shared, not wrapped
	chainForward    = wrap + "FORWARD"
	chainInput      = wrap + "INPUT"
	chainOutput     = wrap + "OUTPUT"
	chainLocal      = wrap + "local"
	chainSG         = wrap + "sg-chain"
	chainFallback   = wrap + "sg-fallback"
	chainPrerouting = wrap + "PREROUTING"

	// Chain names below the wrap prefix are cut to 11 characters
	// (MAX_IPTABLES_CHAIN_LEN_WRAP), device names to 14 (LINUX_DEV_LEN).
	maxWrappedChainLen = 11
	maxDeviceLen       = 14

	// An ipset name leaves room for Neutron's "-n" swap suffix in 31.
	maxSetNameLen = 29
)

// Comments Neutron attaches (neutron/agent/linux/iptables_comments.py).
const (
	commentUnmatchDrop   = "Default drop rule for unmatched traffic."
	commentVMIntSG       = "Direct traffic from the VM interface to the security group chain."
	commentSGToVMSG      = "Jump to the VM specific chain."
	commentInputToSG     = "Direct incoming traffic from VM to the security group chain."
	commentPairAllow     = "Allow traffic from defined IP/MAC pairs."
	commentPairDrop      = "Drop traffic without an IP/MAC allow rule."
	commentDHCPClient    = "Allow DHCP client traffic."
	commentDHCPSpoof     = "Prevent DHCP Spoofing by VM."
	commentUnmatched     = "Send unmatched traffic to the fallback chain."
	commentInvalidDrop   = "Drop packets that appear related to an existing connection (e.g. TCP ACK/FIN) but do not have an entry in conntrack."
	commentAllowAssoc    = "Direct packets associated with a known session to the RETURN chain."
	commentPortSecAccept = "Accept all packets when port security is disabled."
	commentTrustedAccept = "Accept all packets when port is trusted."
	commentIPv6RADrop    = "Drop IPv6 Router Advts from VM Instance."
	commentIPv6ICMPAllow = "Allow IPv6 ICMP traffic."

	// moat's own, on the rules that drop a rejected port's traffic.
	commentRejected = "Drop all packets of a port whose rules cannot be built."
)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// portChainName is the port's chain of the given kind: 'i' (to the VM),
// 'o' (from the VM) or 's' (anti-spoofing).
func portChainName(kind byte, portID string) string {
	return wrap + truncate(string(kind)+portID, maxWrappedChainLen)
}

// TapDevice is the name of a port's tap device in the hybrid layout.
func TapDevice(portID string) string { return truncate("tap"+portID, maxDeviceLen) }

// BridgeVethDevice is the name of the port's qvb device, the bridge end of
// the veth pair towards OVS.
func BridgeVethDevice(portID string) string { return truncate("qvb"+portID, maxDeviceLen) }

// IPSetName is the ipset Neutron uses for a remote group (or, in moat, an
// address group) and ethertype: "N" + ethertype + id, cut to 29 characters,
// e.g. NIPv414c032e9-bc0a-4a7e-9f5b-.
func IPSetName(ethertype, id string) string {
	return truncate("N"+ethertype+id, maxSetNameLen)
}

// withComment is Neutron's comment_rule: the comment goes just before the
// jump (or first, for a jump-only rule), which is where iptables-save
// prints it.
func withComment(rule, comment string, enabled bool) string {
	if !enabled || comment == "" {
		return rule
	}
	c := `-m comment --comment "` + comment + `"`
	if len(rule) >= 2 && rule[:2] == "-j" {
		return c + " " + rule
	}
	for i := 0; i+4 <= len(rule); i++ {
		if rule[i:i+4] == " -j " {
			return rule[:i] + " " + c + rule[i:]
		}
	}
	return rule + " " + c
}
