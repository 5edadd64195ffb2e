package iptablestest

import (
	"fmt"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// hitKey names a rule by family, table, chain and text (as iptables-save
// prints it): counters follow the rule when others are inserted before it.
type hitKey struct {
	fam                int
	table, chain, rule string
}

// Hit adds packets and bytes to the counters of the rule of family
// ("ipv4" or "ipv6"), table and chain whose text (as iptables-save prints
// it) is rule, as traffic would; `iptables -v -S` prints them.
func (k *Kernel) Hit(family, table, chain, rule string, packets, bytes uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.hits == nil {
		k.hits = map[hitKey]hybrid.Counters{}
	}
	key := hitKey{familyIndex(family), table, chain, rule}
	c := k.hits[key]
	c.Packets += packets
	c.Bytes += bytes
	k.hits[key] = c
}

// listVerbose is `-v -S [chain]`: the rules with "-c PACKETS BYTES"
// before the target, as iptables prints them.
func (k *Kernel) listVerbose(fam int, t *table, toks []string) ([]byte, error) {
	out, err := k.do(t, toks)
	if err != nil {
		return nil, fail("iptables", toks, 1, "iptables: "+err.Error())
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(out, "\n") {
		rest, ok := strings.CutPrefix(line, "-A ")
		if !ok {
			b.WriteString(line)
			continue
		}
		rest = strings.TrimSuffix(rest, "\n")
		chain, rule, _ := strings.Cut(rest, " ")
		c := k.hits[hitKey{fam, t.name, chain, rule}]
		cnt := fmt.Sprintf("-c %d %d", c.Packets, c.Bytes)
		before, target, found := strings.Cut(rule, "-j ")
		switch {
		case rule == "":
			rule = cnt
		case found && (before == "" || strings.HasSuffix(before, " ")):
			rule = before + cnt + " -j " + target
		default:
			rule += " " + cnt
		}
		b.WriteString("-A " + chain + " " + rule + "\n")
	}
	return []byte(b.String()), nil
}
