package trace

import (
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Ruleset is one family's tables as iptables-save (or ip6tables-save)
// printed them. It is not safe for concurrent use: rules are compiled
// lazily, when a trace first reaches them.
type Ruleset struct {
	// IPv6 is set for ip6tables-save input; the dump itself does not say.
	IPv6   bool
	Tables []*Table // in input order

	taps     []string // Taps, once computed
	wrapList []string // wraps, once computed
}

// Table is one table of a dump.
type Table struct {
	Name   string
	Chains []*Chain       // in the order the dump declares them
	index  map[string]int // into Chains
}

// Chain is a chain and its rules.
type Chain struct {
	Table *Table
	Name  string
	// Policy is the built-in chain's policy ("ACCEPT", "DROP"); "" for a
	// user-defined chain.
	Policy string
	// Counters are the policy's counters (packets that met the policy).
	Counters Counters
	Rules    []*Rule

	index  *chainIndex // built on the second traversal of a long chain
	visits int
	// established is firstEstablished plus one, 0 until asked.
	established int
}

// Builtin reports whether the chain is one of the kernel's built-in chains
// (it has a policy).
func (c *Chain) Builtin() bool { return c.Policy != "" }

// Counters are a rule's (or a policy's) packet and byte counters, as
// iptables-save -c prints them ("[packets:bytes]").
type Counters = hybrid.Counters

// Rule is one rule of a chain.
type Rule struct {
	Chain *Chain
	// Num is the rule's 1-based position in its chain, as iptables -L
	// --line-numbers shows it.
	Num int
	// Text is the rule as iptables-save prints it after "-A <chain> ".
	Text     string
	Counters Counters
	// Line is the rule's line number in the input.
	Line int

	compiled *compiledRule // nil until a trace reaches the rule
	key      *indexKey     // nil until the chain is indexed
}

// Table returns the table named name, or nil.
func (rs *Ruleset) Table(name string) *Table {
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the chain named name, or nil.
func (t *Table) Chain(name string) *Chain {
	if t == nil {
		return nil
	}
	if i, ok := t.index[name]; ok {
		return t.Chains[i]
	}
	return nil
}

// ParseSave reads iptables-save output, with or without counters (-c), or
// iptables-restore input of the same shape (the built-in chains need not be
// declared there). v6 says whether it is ip6tables output.
func ParseSave(r io.Reader, v6 bool) (*Ruleset, error) {
	s, err := readString(r)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return ParseSaveString(s, v6)
}

// readString reads r into one string. A file's size is known, so the
// string is allocated once: io.ReadAll would grow a buffer step by step and
// string() copy it again, which for a 5,000-port dump (18 MB) costs more
// than parsing it.
func readString(r io.Reader) (string, error) {
	var b strings.Builder
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() < 1<<31 {
			b.Grow(int(fi.Size()) + 1)
		}
	}
	if _, err := io.Copy(&b, r); err != nil {
		return "", err
	}
	return b.String(), nil
}

// ParseSaveString is ParseSave on a string. Rules keep substrings of s.
func ParseSaveString(s string, v6 bool) (*Ruleset, error) {
	rs := &Ruleset{IPv6: v6}
	// One allocation for every rule (a dump of 5,000 ports holds
	// 125,000): the count is exact for iptables-save output. Should it be
	// short, append moves on to a new array and the pointers taken so far
	// keep the old one alive, which is still correct.
	lines := strings.Count(s, "\n") + 1 // one byte: a vectorised count
	rules := make([]Rule, 0, lines)
	var t *Table
	err := hybrid.ReadSave(s, func(l *hybrid.SaveLine) error {
		switch l.Kind {
		case hybrid.SaveTable:
			t = &Table{Name: l.Table}
			rs.Tables = append(rs.Tables, t)
		case hybrid.SaveChain:
			addChain(t, &Chain{Table: t, Name: l.Chain, Policy: l.Policy, Counters: l.Counters})
		case hybrid.SaveRule:
			if l.Implicit {
				// Restore input need not declare the built-in chains.
				addChain(t, &Chain{Table: t, Name: l.Chain, Policy: "ACCEPT"})
			}
			ch := t.Chains[l.ChainIndex]
			rules = append(rules, Rule{Chain: ch, Num: len(ch.Rules) + 1, Text: l.Rule, Counters: l.Counters, Line: l.Num})
			ch.Rules = append(ch.Rules, &rules[len(rules)-1])
		case hybrid.SaveCommit:
			// The reader's index of the chains, the implicit ones too.
			t.index = l.Chains
			for _, b := range hybrid.BuiltinChains(t.Name) {
				if _, ok := t.index[b]; !ok {
					t.index[b] = len(t.Chains)
					addChain(t, &Chain{Table: t, Name: b, Policy: "ACCEPT"})
				}
			}
			t = nil
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rs.Tables) == 0 {
		return nil, fmt.Errorf("no tables in the input (is it iptables-save output?)")
	}
	return rs, nil
}

func addChain(t *Table, c *Chain) { t.Chains = append(t.Chains, c) }

// clip shortens a line for an error message.
func clip(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
