package firewall

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
