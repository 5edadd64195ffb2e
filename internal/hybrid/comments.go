package hybrid

// Comments Neutron attaches to its rules (neutron/agent/linux/
// iptables_comments.py) when comment_iptables_rules is on.
const (
	CommentUnmatchDrop   = "Default drop rule for unmatched traffic."
	CommentVMIntSG       = "Direct traffic from the VM interface to the security group chain."
	CommentSGToVMSG      = "Jump to the VM specific chain."
	CommentInputToSG     = "Direct incoming traffic from VM to the security group chain."
	CommentPairAllow     = "Allow traffic from defined IP/MAC pairs."
	CommentPairDrop      = "Drop traffic without an IP/MAC allow rule."
	CommentDHCPClient    = "Allow DHCP client traffic."
	CommentDHCPSpoof     = "Prevent DHCP Spoofing by VM."
	CommentUnmatched     = "Send unmatched traffic to the fallback chain."
	CommentInvalidDrop   = "Drop packets that appear related to an existing connection (e.g. TCP ACK/FIN) but do not have an entry in conntrack."
	CommentAllowAssoc    = "Direct packets associated with a known session to the RETURN chain."
	CommentPortSecAccept = "Accept all packets when port security is disabled."
	CommentTrustedAccept = "Accept all packets when port is trusted."
	CommentIPv6RADrop    = "Drop IPv6 Router Advts from VM Instance."
	CommentIPv6ICMPAllow = "Allow IPv6 ICMP traffic."

	// CommentRejected is moat's own, on the rules that drop a rejected
	// port's traffic.
	CommentRejected = "Drop all packets of a port whose rules cannot be built."
)

// ZoneComment is the comment of a port's conntrack zone rules in the raw
// table; Neutron writes it whatever comment_iptables_rules says.
func ZoneComment(portID string) string { return "Set zone for " + portID }

// StatelessComment is the comment of a stateless port's raw rules.
func StatelessComment(portID string) string { return "Make " + portID + " stateless" }
