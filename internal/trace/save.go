package trace

import (
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
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
	Chains []*Chain // in the order the dump declares them
	byName map[string]*Chain
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
type Counters struct {
	Packets, Bytes uint64
	// Known is false when the dump had no counters for this rule
	// (iptables-save without -c, restore input).
	Known bool
}

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
	return t.byName[name]
}

// builtinChains are the chains each table has in the kernel, with their
// default policy; restore input (which need not declare them) gets them
// with policy ACCEPT.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
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
	// Chain maps sized for the whole dump: a 5,000-port host has 15,000
	// chains, and growing a map that size costs more than the parse.
	chainHint := strings.Count(s, "\n:")
	var t *Table
	lineNo := 0
	for len(s) > 0 {
		lineNo++
		var line string
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			line, s = s, ""
		}
		line = strings.TrimRight(line, "\r") // CRLF files, even doubled
		if line == "" || line[0] == '#' {
			continue
		}
		switch line[0] {
		case '*':
			if t != nil {
				return nil, fmt.Errorf("line %d: table %s starts before table %s's COMMIT", lineNo, line[1:], t.Name)
			}
			name := strings.TrimSpace(line[1:])
			if name == "" {
				return nil, fmt.Errorf("line %d: table without a name", lineNo)
			}
			if rs.Table(name) != nil {
				return nil, fmt.Errorf("line %d: table %s appears twice", lineNo, name)
			}
			t = &Table{Name: name, byName: make(map[string]*Chain, chainHint)}
			rs.Tables = append(rs.Tables, t)
			continue
		}
		if t == nil {
			return nil, fmt.Errorf("line %d: %q outside a table (no *table line before it)", lineNo, clip(line))
		}
		switch {
		case line == "COMMIT":
			addBuiltins(t)
			t = nil
		case line[0] == ':':
			if err := declareChain(t, line); err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
		default:
			c, text, cnt, err := ruleLine(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			ch := t.byName[c]
			if ch == nil {
				ch = implicitChain(t, c)
				if ch == nil {
					return nil, fmt.Errorf("line %d: rule in chain %s, which the dump does not declare", lineNo, c)
				}
			}
			rules = append(rules, Rule{Chain: ch, Num: len(ch.Rules) + 1, Text: text, Counters: cnt, Line: lineNo})
			ch.Rules = append(ch.Rules, &rules[len(rules)-1])
		}
	}
	if t != nil {
		return nil, fmt.Errorf("table %s has no COMMIT line (truncated input?)", t.Name)
	}
	if len(rs.Tables) == 0 {
		return nil, fmt.Errorf("no tables in the input (is it iptables-save output?)")
	}
	return rs, nil
}

func declareChain(t *Table, line string) error {
	f := strings.Fields(line[1:])
	if len(f) < 2 {
		return fmt.Errorf("bad chain line %q (want \":NAME POLICY [p:b]\")", clip(line))
	}
	name, policy := f[0], f[1]
	if t.byName[name] != nil {
		return fmt.Errorf("chain %s declared twice", name)
	}
	c := &Chain{Table: t, Name: name}
	if policy != "-" {
		switch policy {
		case "ACCEPT", "DROP":
		default:
			return fmt.Errorf("chain %s: unknown policy %q", name, policy)
		}
		c.Policy = policy
	}
	if len(f) >= 3 {
		cnt, ok := parseCounters(f[2])
		if !ok {
			return fmt.Errorf("chain %s: bad counters %q", name, f[2])
		}
		c.Counters = cnt
	}
	t.Chains = append(t.Chains, c)
	t.byName[name] = c
	return nil
}

// implicitChain creates a built-in chain that restore input uses without
// declaring it.
func implicitChain(t *Table, name string) *Chain {
	for _, b := range builtinChains[t.Name] {
		if b == name {
			c := &Chain{Table: t, Name: name, Policy: "ACCEPT"}
			t.Chains = append(t.Chains, c)
			t.byName[name] = c
			return c
		}
	}
	return nil
}

func addBuiltins(t *Table) {
	for _, b := range builtinChains[t.Name] {
		if t.byName[b] == nil {
			implicitChain(t, b)
		}
	}
}

// ruleLine splits "[p:b] -A CHAIN rest" (counters optional).
func ruleLine(line string) (chain, text string, cnt Counters, err error) {
	if line[0] == '[' {
		end := strings.IndexByte(line, ']')
		if end < 0 {
			return "", "", cnt, fmt.Errorf("bad counters in %q", clip(line))
		}
		var ok bool
		if cnt, ok = parseCounters(line[:end+1]); !ok {
			return "", "", cnt, fmt.Errorf("bad counters in %q", clip(line))
		}
		line = strings.TrimLeft(line[end+1:], " ")
	}
	if !strings.HasPrefix(line, "-A ") {
		return "", "", cnt, fmt.Errorf("unexpected line %q (only -A rules, :chains, *tables and COMMIT are read)", clip(line))
	}
	rest := strings.TrimLeft(line[3:], " ")
	i := strings.IndexByte(rest, ' ')
	if i < 0 {
		return rest, "", cnt, nil
	}
	chain, text = rest[:i], strings.TrimLeft(rest[i+1:], " ")
	// iptables-restore also accepts counters as "-c P B" at the start of
	// the rule (when the line has no "[P:B]"); take them out so that the
	// text is what iptables-save prints.
	if strings.HasPrefix(text, "-c ") && !cnt.Known {
		f := strings.SplitN(text, " ", 4)
		if len(f) >= 3 {
			p, e1 := strconv.ParseUint(f[1], 10, 64)
			b, e2 := strconv.ParseUint(f[2], 10, 64)
			if e1 == nil && e2 == nil {
				cnt = Counters{Packets: p, Bytes: b, Known: true}
				text = ""
				if len(f) == 4 {
					text = strings.TrimLeft(f[3], " ")
				}
			}
		}
	}
	return chain, text, cnt, nil
}

func parseCounters(s string) (Counters, bool) {
	if len(s) < 5 || s[0] != '[' || s[len(s)-1] != ']' {
		return Counters{}, false
	}
	p, b, ok := strings.Cut(s[1:len(s)-1], ":")
	if !ok {
		return Counters{}, false
	}
	pn, err1 := strconv.ParseUint(p, 10, 64)
	bn, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return Counters{}, false
	}
	return Counters{Packets: pn, Bytes: bn, Known: true}, true
}

// clip shortens a line for an error message.
func clip(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
