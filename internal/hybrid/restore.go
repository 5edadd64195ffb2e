package hybrid

import (
	"strconv"
	"strings"
)

// RestoreRule rewrites a rule as text for iptables-restore that does not
// depend on the host's /etc/protocols: the -p name becomes its number.
// iptables-save prints the rule back as the original text on any host whose
// /etc/protocols agrees with Debian 12's. A rule without a -p option is
// returned as it is, without allocating.
func RestoreRule(rule string) string {
	start, end, num, ok := restoreProtocol(rule)
	if !ok {
		return rule
	}
	return rule[:start] + strconv.Itoa(num) + rule[end:]
}

// AppendRestoreRule appends RestoreRule(rule) to b without building the
// string (the iptables syncer writes every rule of a full load this way).
func AppendRestoreRule(b []byte, rule string) []byte {
	start, end, num, ok := restoreProtocol(rule)
	if !ok {
		return append(b, rule...)
	}
	b = append(b, rule[:start]...)
	b = strconv.AppendInt(b, int64(num), 10)
	return append(b, rule[end:]...)
}

// restoreProtocol finds the argument of the first -p option outside quoted
// comment text, rule[start:end], and its protocol number; ok is false
// without one, or when iptables would not read it.
func restoreProtocol(rule string) (start, end, num int, ok bool) {
	inQuote := false
	for i := 0; i < len(rule); i++ {
		switch c := rule[i]; {
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '-' && strings.HasPrefix(rule[i:], "-p ") && (i == 0 || rule[i-1] == ' '):
			start = i + len("-p ")
			end = strings.IndexByte(rule[start:], ' ')
			if end < 0 {
				end = len(rule)
			} else {
				end += start
			}
			arg := rule[start:end]
			if num, ok = protocolNumbers[arg]; !ok {
				num, ok = ParseIptablesProtocol(arg)
			}
			return start, end, num, ok
		}
	}
	return 0, 0, 0, false
}

// protocolNumbers maps the protocol names iptables-save prints (and the
// compiler writes) to their numbers, sparing the general parser (which
// lowercases its argument) on every rule. A name is only kept where the
// parser agrees, so the result is the parser's either way.
var protocolNumbers = func() map[string]int {
	m := map[string]int{}
	for n := 1; n < 256; n++ {
		name := IptablesProtocolName(n)
		if p, ok := ParseIptablesProtocol(name); ok && p == n {
			m[name] = n
		}
	}
	return m
}()
