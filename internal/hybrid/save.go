package hybrid

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// iptables-save text: one reader and one writer for everyone who reads a
// dump (trace, the syncer, the parity tests) or writes one (the compiler's
// WriteSave, moat render, the fake kernel).
//
//	# comment
//	*table
//	:CHAIN POLICY [packets:bytes]     (POLICY "-" for a user chain)
//	[packets:bytes] -A CHAIN rule...  (counters only with iptables-save -c)
//	COMMIT

// Counters are a rule's (or a chain policy's) packet and byte counters, as
// iptables-save -c prints them ("[packets:bytes]").
type Counters struct {
	Packets, Bytes uint64
	// Known is false when the text had no counters (iptables-save
	// without -c, restore input).
	Known bool
}

// builtinChains are the chains each table has in the kernel, in the order
// iptables-save prints them.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// BuiltinChains are the kernel's built-in chains of a table, in
// iptables-save's order; nil for a table the kernel does not have.
func BuiltinChains(table string) []string { return builtinChains[table] }

func isBuiltin(table, chain string) bool {
	for _, b := range builtinChains[table] {
		if b == chain {
			return true
		}
	}
	return false
}

// SaveLineKind is what a line of iptables-save text is.
type SaveLineKind uint8

const (
	SaveComment SaveLineKind = iota + 1 // "# ..."
	SaveTable                           // "*name"
	SaveChain                           // ":NAME POLICY [p:b]"
	SaveRule                            // "[p:b] -A CHAIN rule"
	SaveCommand                         // any other command, in restore input only
	SaveCommit                          // "COMMIT"
)

// SaveLine is one line ReadSave read. The strings are substrings of the
// input; the SaveLine itself is reused from call to call.
type SaveLine struct {
	Kind SaveLineKind
	// Num is the line's number, from 1.
	Num int
	// Text is the line as read, less a trailing carriage return.
	Text string
	// Table is the table the line belongs to (SaveTable: the one it
	// opens).
	Table string
	// Chain is the chain a SaveChain line declares or a SaveRule line
	// appends to.
	Chain string
	// ChainIndex numbers the chains of a table from 0 in the order they
	// are declared; a built-in chain restore input uses without declaring
	// it gets the next number on first use (then Implicit is set).
	ChainIndex int
	Implicit   bool
	// Policy is a built-in chain's policy (ACCEPT or DROP), "" for a user
	// chain ("-").
	Policy string
	// Counters are the chain policy's or the rule's.
	Counters Counters
	// Rule is the rule after "-A CHAIN " (SaveRule), the whole command
	// (SaveCommand).
	Rule string
	// Chains maps the names of the table's chains to their ChainIndex,
	// on SaveCommit lines of ReadSave: the reader may keep it (ReadSave
	// does not touch it again) instead of indexing the chains itself.
	Chains map[string]int
}

// SaveError is a line ReadSave does not accept.
type SaveError struct {
	Line int // 0: the input as a whole (a missing COMMIT)
	Msg  string
}

func (e *SaveError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
}

// ErrNoCommit is wrapped by the error for input that ends inside a table.
var ErrNoCommit = errors.New("no COMMIT line")

type noCommitError struct{ table string }

func (e *noCommitError) Error() string {
	return "table " + e.table + " has no COMMIT line (truncated input?)"
}
func (e *noCommitError) Unwrap() error { return ErrNoCommit }

// ReadSave reads iptables-save output, with or without counters (-c), or
// iptables-restore input of the same shape, and calls fn for every line
// but blank ones. It checks the structure (every line but comments inside
// a table, every table committed, each table and chain declared once,
// policies ACCEPT or DROP, well-formed counters), reads counters as
// "[p:b]" before the rule or "-c p b" after the chain, and accepts -A rules
// only: restore input may leave built-in chains undeclared, but every
// other chain a rule appends to must be declared. Empty input holds no
// table and is no error. The first error (a *SaveError, or one wrapping
// ErrNoCommit) or the first error fn returns ends the reading.
func ReadSave(s string, fn func(*SaveLine) error) error { return readSave(s, false, fn) }

// ReadRestore is ReadSave for iptables-restore input: any command may
// follow a table's chain lines (-A, -I, -D, -N, ... as SaveCommand lines,
// Rule the whole line), and chains are not checked.
func ReadRestore(s string, fn func(*SaveLine) error) error { return readSave(s, true, fn) }

func readSave(s string, restore bool, fn func(*SaveLine) error) error {
	var (
		l        SaveLine
		inTable  bool
		declared map[string]int
		tables   []string
	)
	// Sized for the whole input: a 5,000-port host declares 15,000
	// chains, and growing a map that size costs more than the parse.
	chainHint := 0
	if !restore {
		chainHint = strings.Count(s, "\n:")
	}
	fail := func(format string, args ...any) error {
		return &SaveError{Line: l.Num, Msg: fmt.Sprintf(format, args...)}
	}
	for len(s) > 0 {
		l.Num++
		var line string
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			line, s = s, ""
		}
		line = strings.TrimRight(line, "\r") // CRLF files, even doubled
		if line == "" {
			continue
		}
		if strings.IndexByte(line, '\r') >= 0 {
			// iptables-save never prints one inside a line; a rule
			// carrying it could not be written back as one line.
			return fail("carriage return inside line %q", clip(line))
		}
		l.Text, l.Chain, l.ChainIndex, l.Implicit, l.Policy, l.Counters, l.Rule, l.Chains = line, "", 0, false, "", Counters{}, "", nil
		switch {
		case line[0] == '#':
			l.Kind = SaveComment
		case line[0] == '*':
			if inTable {
				return fail("table %s starts before table %s's COMMIT", line[1:], l.Table)
			}
			name := strings.TrimSpace(line[1:])
			if name == "" {
				return fail("table without a name")
			}
			for _, t := range tables {
				if t == name {
					return fail("table %s appears twice", name)
				}
			}
			tables = append(tables, name)
			inTable, l.Kind, l.Table = true, SaveTable, name
			declared = make(map[string]int, chainHint)
		case !inTable:
			return fail("%q outside a table (no *table line before it)", clip(line))
		case line == "COMMIT":
			inTable, l.Kind, l.Chains = false, SaveCommit, declared
		case line[0] == ':':
			if err := readChainLine(&l, line, declared, restore); err != nil {
				return err
			}
		default:
			if err := readRuleLine(&l, line, declared, restore); err != nil {
				return err
			}
		}
		if err := fn(&l); err != nil {
			return err
		}
		if l.Kind == SaveCommit {
			l.Table = ""
		}
	}
	if inTable {
		return &noCommitError{table: l.Table}
	}
	return nil
}

func readChainLine(l *SaveLine, line string, declared map[string]int, restore bool) error {
	fail := func(format string, args ...any) error {
		return &SaveError{Line: l.Num, Msg: fmt.Sprintf(format, args...)}
	}
	f := strings.Fields(line[1:])
	if len(f) < 2 {
		return fail("bad chain line %q (want \":NAME POLICY [p:b]\")", clip(line))
	}
	l.Kind, l.Chain = SaveChain, f[0]
	if !restore {
		// A second declaration would make two chains of one name (or one
		// both built-in and not) and whatever reads the dump ambiguous.
		if _, dup := declared[l.Chain]; dup {
			return fail("chain %s declared twice in table %s", l.Chain, l.Table)
		}
		l.ChainIndex = len(declared)
		declared[l.Chain] = l.ChainIndex
	}
	if f[1] != "-" {
		switch f[1] {
		case "ACCEPT", "DROP":
		default:
			return fail("chain %s: unknown policy %q", l.Chain, f[1])
		}
		l.Policy = f[1]
	}
	if len(f) >= 3 {
		cnt, ok := parseCounters(f[2])
		if !ok {
			return fail("chain %s: bad counters %q", l.Chain, f[2])
		}
		l.Counters = cnt
	}
	return nil
}

// readRuleLine splits "[p:b] -A CHAIN rest" (counters optional).
func readRuleLine(l *SaveLine, line string, declared map[string]int, restore bool) error {
	fail := func(format string, args ...any) error {
		return &SaveError{Line: l.Num, Msg: fmt.Sprintf(format, args...)}
	}
	if line[0] == '[' {
		end := strings.IndexByte(line, ']')
		if end < 0 {
			return fail("bad counters in %q", clip(line))
		}
		var ok bool
		if l.Counters, ok = parseCounters(line[:end+1]); !ok {
			return fail("bad counters in %q", clip(line))
		}
		line = strings.TrimLeft(line[end+1:], " ")
	}
	if restore && strings.HasPrefix(line, "-") {
		l.Kind, l.Rule = SaveCommand, line
		return nil
	}
	if !strings.HasPrefix(line, "-A ") {
		return fail("unexpected line %q (only -A rules, :chains, *tables and COMMIT are read)", clip(line))
	}
	rest := strings.TrimLeft(line[3:], " ")
	chain, text := rest, ""
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		chain, text = rest[:i], strings.TrimLeft(rest[i+1:], " ")
	}
	l.Kind, l.Chain, l.Rule = SaveRule, chain, text
	// iptables-restore also takes counters as "-c P B" at the start of the
	// rule (when the line has no "[P:B]"); take them out so that the text
	// is what iptables-save prints.
	if strings.HasPrefix(text, "-c ") && !l.Counters.Known {
		f := strings.SplitN(text, " ", 4)
		if len(f) >= 3 {
			p, e1 := strconv.ParseUint(f[1], 10, 64)
			b, e2 := strconv.ParseUint(f[2], 10, 64)
			if e1 == nil && e2 == nil {
				l.Counters = Counters{Packets: p, Bytes: b, Known: true}
				l.Rule = ""
				if len(f) == 4 {
					l.Rule = strings.TrimLeft(f[3], " ")
				}
			}
		}
	}
	idx, ok := declared[chain]
	if !ok {
		if !isBuiltin(l.Table, chain) {
			return fail("rule in chain %s, which the dump does not declare", chain)
		}
		idx = len(declared)
		declared[chain] = idx
		l.Implicit = true
	}
	l.ChainIndex = idx
	return nil
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

// SaveWriter writes iptables-save text. Counters are written where they
// are known, so that what ReadSave read is written back as it was read.
type SaveWriter struct {
	b []byte
}

// Comment writes a comment line ("# " is added).
func (w *SaveWriter) Comment(text string) { w.b = append(append(append(w.b, "# "...), text...), '\n') }

// Table opens a table.
func (w *SaveWriter) Table(name string) { w.b = append(append(append(w.b, '*'), name...), '\n') }

// Chain declares a chain: policy "" for a user chain.
func (w *SaveWriter) Chain(name, policy string, c Counters) {
	if policy == "" {
		policy = "-"
	}
	w.b = append(append(append(append(w.b, ':'), name...), ' '), policy...)
	if c.Known {
		w.b = append(w.b, ' ')
		w.b = appendCounters(w.b, c)
	}
	w.b = append(w.b, '\n')
}

// Rule appends a rule to a chain.
func (w *SaveWriter) Rule(chain, rule string, c Counters) {
	if c.Known {
		w.b = append(appendCounters(w.b, c), ' ')
	}
	w.b = append(append(w.b, "-A "...), chain...)
	if rule != "" {
		w.b = append(append(w.b, ' '), rule...)
	}
	w.b = append(w.b, '\n')
}

// Commit closes the table.
func (w *SaveWriter) Commit() { w.b = append(w.b, "COMMIT\n"...) }

func appendCounters(b []byte, c Counters) []byte {
	b = append(b, '[')
	b = strconv.AppendUint(b, c.Packets, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, c.Bytes, 10)
	return append(b, ']')
}

// String returns what was written.
func (w *SaveWriter) String() string { return string(w.b) }

// Len is the size of what was written.
func (w *SaveWriter) Len() int { return len(w.b) }

// WriteTo writes what was written to out.
func (w *SaveWriter) WriteTo(out io.Writer) (int64, error) {
	n, err := out.Write(w.b)
	return int64(n), err
}
