package firewall

import (
	"io"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
)

// WriteSave writes the tables as iptables-save prints them on a fresh host
// that holds only moat's rules (no "# Generated"/"# Completed" lines, all
// counters zero), in the given table order. The output is valid
// iptables-restore input.
func WriteSave(w io.Writer, tables ...*Table) error {
	var b strings.Builder
	for _, t := range tables {
		b.WriteString("*" + t.Name + "\n")
		for _, c := range t.Builtins {
			b.WriteString(":" + c.Name + " ACCEPT [0:0]\n")
		}
		for _, c := range t.Chains {
			b.WriteString(":" + c.Name + " - [0:0]\n")
		}
		for _, cs := range [][]Chain{t.Builtins, t.Chains} {
			for _, c := range cs {
				for _, r := range c.Rules {
					b.WriteString("-A " + c.Name + " " + r + "\n")
				}
			}
		}
		b.WriteString("COMMIT\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteIPSetSave writes the sets as `ipset save -sorted` prints them, less
// the random initval ipset adds to each create line. The output is valid
// `ipset restore` input.
func WriteIPSetSave(w io.Writer, sets []IPSet) error {
	var b strings.Builder
	for _, s := range sets {
		b.WriteString("create " + s.Name + " " + s.Type + " family " + s.Family +
			" hashsize 1024 maxelem 65536 bucketsize 12\n")
		for _, m := range s.Members {
			b.WriteString("add " + s.Name + " " + m + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

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
				num, ok = neutron.ParseIptablesProtocol(arg)
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
		name := neutron.IptablesProtocolName(n)
		if p, ok := neutron.ParseIptablesProtocol(name); ok && p == n {
			m[name] = n
		}
	}
	return m
}()
