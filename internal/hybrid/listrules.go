package hybrid

import (
	"fmt"
	"strconv"
	"strings"
)

// ListedRule is a rule of `iptables -v -S CHAIN`: its chain, its text as
// iptables-save prints it after "-A CHAIN " (the counters taken out) and
// its counters.
type ListedRule struct {
	Chain    string
	Rule     string
	Counters Counters
}

// ReadListRules reads `iptables -v -S [CHAIN]` output: "-N", "-P" lines
// are skipped, "-A CHAIN rule" lines are returned in order with the
// counters that -v prints as "-c PACKETS BYTES" before the target (where
// iptables-save -c prints "[p:b]" before -A). Reading one chain this way
// costs one small process instead of a whole table's save.
func ReadListRules(out string) ([]ListedRule, error) {
	var rules []ListedRule
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "-N ") || strings.HasPrefix(line, "-P ") || strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, "-A ")
		if !ok {
			return nil, fmt.Errorf("line %d: unexpected %q (want -N, -P or -A lines)", n+1, clip(line))
		}
		chain, text, _ := strings.Cut(rest, " ")
		r := ListedRule{Chain: chain}
		var err error
		if r.Rule, r.Counters, err = cutListCounters(text); err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// cutListCounters takes the last "-c P B" words out of a rule (words, so
// that a comment holding "-c 1 2" is left alone).
func cutListCounters(rule string) (string, Counters, error) {
	type word struct{ start, end int }
	var ws []word
	for i := 0; ; {
		start, end, quoted, err := scanArg(rule, i)
		if err != nil {
			return "", Counters{}, err
		}
		if start == end && !quoted {
			break
		}
		ws = append(ws, word{start, end})
		i = end
	}
	for k := len(ws) - 3; k >= 0; k-- {
		if rule[ws[k].start:ws[k].end] != "-c" {
			continue
		}
		p, e1 := strconv.ParseUint(rule[ws[k+1].start:ws[k+1].end], 10, 64)
		b, e2 := strconv.ParseUint(rule[ws[k+2].start:ws[k+2].end], 10, 64)
		if e1 != nil || e2 != nil {
			continue
		}
		before := strings.TrimRight(rule[:ws[k].start], " \t")
		after := strings.TrimLeft(rule[ws[k+2].end:], " \t")
		text := before
		if before != "" && after != "" {
			text += " "
		}
		return text + after, Counters{Packets: p, Bytes: b, Known: true}, nil
	}
	return rule, Counters{}, nil
}
