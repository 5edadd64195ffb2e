// Package iptablestest is an in-memory stand-in for the kernel's iptables
// and its tools, so that code driving iptables-save and iptables-restore is
// tested without root or a network namespace.
//
// Kernel implements dataplane.Exec for the binaries iptables, ip6tables,
// their -save and -restore tools, and the -legacy and -nft variants of each
// (all variants share one model per family). It models what the syncer
// relies on: tables with built-in and user chains, iptables-restore's
// per-table transactions (a failing line aborts its table; tables committed
// earlier in the same input stay), --noflush, ":chain" lines (create, or
// flush an existing chain), -A, -I chain [n], -D chain spec|n, -F, -X, -N,
// -P, and references between chains (a chain in use or not empty cannot be
// deleted, a jump needs an existing chain or a known target). Rules are
// kept as the tokens iptables would parse and printed back the way
// iptables-save does: protocol numbers as /etc/protocols names, comments
// quoted only when needed.
package iptablestest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/hybrid"
)

// Kernel is the fake. The zero value is not usable; call New.
type Kernel struct {
	mu   sync.Mutex
	fams [2]map[string]*table // by family (0 ipv4, 1 ipv6), by table name
	gen  uint32               // bumped by every committed write, as nf_tables' generation

	// FailRestore, when set, is called before each restore is applied with
	// the binary's name and its input; an error fails the command without
	// applying anything (exit status 1).
	FailRestore func(name, input string) error
	// SetExists, when set, decides whether the ipset a rule matches with
	// "-m set --match-set NAME" exists; a rule naming a missing set fails,
	// as iptables does ("Set NAME doesn't exist.").
	SetExists func(name string) bool
	// LegacyWarning makes the *-nft-save tools print the warning
	// iptables-nft-save prints when legacy tables are present.
	LegacyWarning bool

	// hits are the counters Hit set (counters.go), by rule.
	hits map[hitKey]hybrid.Counters
}

// New returns an empty kernel: no tables until something touches them.
func New() *Kernel {
	return &Kernel{fams: [2]map[string]*table{{}, {}}}
}

type table struct {
	name   string
	chains map[string]*chain
}

type chain struct {
	name    string
	builtin bool
	policy  string
	rules   [][]string // each rule's argument tokens, unquoted
}

// targets are the jump targets the fake accepts that are not chains.
var targets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "REJECT": true, "QUEUE": true,
	"CT": true, "NOTRACK": true, "LOG": true, "MARK": true, "CONNMARK": true,
	"MASQUERADE": true, "SNAT": true, "DNAT": true, "REDIRECT": true,
	"TCPMSS": true, "CHECKSUM": true, "NFLOG": true,
}

func newTable(name string) (*table, error) {
	bs := hybrid.BuiltinChains(name)
	if bs == nil {
		return nil, fmt.Errorf("can't initialize iptables table `%s': Table does not exist (do you need to insmod?)", name)
	}
	t := &table{name: name, chains: map[string]*chain{}}
	for _, b := range bs {
		t.chains[b] = &chain{name: b, builtin: true, policy: "ACCEPT"}
	}
	return t, nil
}

func (t *table) clone() *table {
	c := &table{name: t.name, chains: make(map[string]*chain, len(t.chains))}
	for n, ch := range t.chains {
		cp := *ch
		cp.rules = slices.Clone(ch.rules)
		c.chains[n] = &cp
	}
	return c
}

// ExitError is a failed fake command's status, as exec.ExitError reports it.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "exit status " + strconv.Itoa(e.Code) }

// ExitCode returns the status, like (*exec.ExitError).ExitCode.
func (e *ExitError) ExitCode() int { return e.Code }

func fail(cmd string, args []string, code int, msg string) error {
	return &dataplane.CommandError{
		Cmd:    strings.Join(append([]string{cmd}, args...), " "),
		Err:    &ExitError{Code: code},
		Stderr: msg + "\n",
	}
}

// Run implements dataplane.Exec.
func (k *Kernel) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fam, tool, ok := parseName(name)
	if !ok {
		return nil, fail(name, args, 127, "iptablestest: unknown command "+name)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch tool {
	case "save":
		return k.save(fam, name, args)
	case "restore":
		return k.restore(fam, name, args, string(stdin))
	default:
		return k.command(fam, name, args)
	}
}

// parseName splits "ip6tables-nft-save" into family 1 and tool "save".
func parseName(name string) (fam int, tool string, ok bool) {
	rest, v6 := strings.CutPrefix(name, "ip6tables")
	if !v6 {
		if rest, ok = strings.CutPrefix(name, "iptables"); !ok {
			return 0, "", false
		}
	}
	if v6 {
		fam = 1
	}
	rest = strings.TrimPrefix(strings.TrimPrefix(rest, "-legacy"), "-nft")
	switch rest {
	case "":
		return fam, "", true
	case "-save", "-restore":
		return fam, rest[1:], true
	}
	return 0, "", false
}

func (k *Kernel) getTable(fam int, name string, create bool) (*table, error) {
	t := k.fams[fam][name]
	if t == nil && create {
		var err error
		if t, err = newTable(name); err != nil {
			return nil, err
		}
		k.fams[fam][name] = t
	}
	return t, nil
}

func (k *Kernel) save(fam int, name string, args []string) ([]byte, error) {
	only, counters := "", false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-t", "--table":
			if i+1 == len(args) {
				return nil, fail(name, args, 2, "option -t needs an argument")
			}
			i++
			only = args[i]
		case "-c", "--counters":
			counters = true
		default:
			return nil, fail(name, args, 2, "unknown option "+args[i])
		}
	}
	var w hybrid.SaveWriter
	if k.LegacyWarning && strings.Contains(name, "-nft") {
		w.Comment("Warning: iptables-legacy tables present, use iptables-legacy-save to see them")
	}
	var names []string
	if only != "" {
		// Like iptables-legacy-save, asking for a table initialises it.
		if _, err := k.getTable(fam, only, true); err != nil {
			return nil, fail(name, args, 1, err.Error())
		}
		names = []string{only}
	} else {
		for n := range k.fams[fam] {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	for _, n := range names {
		k.fams[fam][n].writeSave(&w, counters, false)
	}
	return []byte(w.String()), nil
}

// writeSave prints the table as iptables-save does: built-in chains in the
// kernel's order, then user chains sorted by name (both backends), then the
// rules in the same chain order; with header and footer comments unless
// bare.
func (t *table) writeSave(w *hybrid.SaveWriter, counters, bare bool) {
	if !bare {
		w.Comment("Generated by iptables-save v1.8.9 on Thu Jan  1 00:00:00 1970")
	}
	w.Table(t.name)
	order := t.order()
	zero := hybrid.Counters{Known: true}
	for _, c := range order {
		p := ""
		if c.builtin {
			p = c.policy
		}
		w.Chain(c.name, p, zero)
	}
	rc := hybrid.Counters{Known: counters}
	for _, c := range order {
		for _, r := range c.rules {
			w.Rule(c.name, formatRule(r), rc)
		}
	}
	w.Commit()
	if !bare {
		w.Comment("Completed on Thu Jan  1 00:00:00 1970")
	}
}

func (t *table) order() []*chain {
	var bs, us []*chain
	for _, c := range t.chains {
		if c.builtin {
			bs = append(bs, c)
		} else {
			us = append(us, c)
		}
	}
	builtinRank := func(n string) int { return slices.Index(hybrid.BuiltinChains(t.name), n) }
	slices.SortFunc(bs, func(a, b *chain) int { return builtinRank(a.name) - builtinRank(b.name) })
	slices.SortFunc(us, func(a, b *chain) int { return strings.Compare(a.name, b.name) })
	return append(bs, us...)
}

// restore applies iptables-restore input.
func (k *Kernel) restore(fam int, name string, args []string, input string) ([]byte, error) {
	noflush := false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-n", "--noflush":
			noflush = true
		case "-w", "--wait":
			// Takes an optional number of seconds.
			if i+1 < len(args) && isNumber(args[i+1]) {
				i++
			}
		default:
			return nil, fail(name, args, 2, "unknown option "+args[i])
		}
	}
	if k.FailRestore != nil {
		if err := k.FailRestore(name, input); err != nil {
			return nil, fail(name, args, 1, err.Error())
		}
	}
	var cur *table // working copy of the table being restored
	lineErr := func(n int, msg string) error {
		return fail(name, args, 1, fmt.Sprintf("%s: line %d failed: %s\nError occurred at line: %d", name, n, msg, n))
	}
	err := hybrid.ReadRestore(input, func(l *hybrid.SaveLine) error {
		switch l.Kind {
		case hybrid.SaveTable:
			t, err := k.getTable(fam, l.Table, true)
			if err != nil {
				return lineErr(l.Num, err.Error())
			}
			cur = t.clone()
			if !noflush {
				for cn, c := range cur.chains {
					if c.builtin {
						c.rules = nil
					} else {
						delete(cur.chains, cn)
					}
				}
			}
		case hybrid.SaveCommit:
			k.fams[fam][cur.name] = cur
			k.gen++
			cur = nil
		case hybrid.SaveChain:
			c := cur.chains[l.Chain]
			switch {
			case c != nil && c.builtin:
				if l.Policy != "" {
					c.policy = l.Policy
				}
			case c != nil:
				c.rules = nil // --noflush: an existing user chain is flushed
			case l.Policy != "":
				return lineErr(l.Num, "can't set policy `"+l.Policy+"' on `"+l.Chain+"': Bad built-in chain name")
			default:
				cur.chains[l.Chain] = &chain{name: l.Chain}
			}
		case hybrid.SaveCommand:
			toks, err := hybrid.SplitArgs(l.Rule)
			if err != nil {
				return lineErr(l.Num, err.Error())
			}
			if _, err := k.do(cur, toks); err != nil {
				return lineErr(l.Num, err.Error())
			}
		}
		return nil
	})
	var se *hybrid.SaveError
	switch {
	case errors.As(err, &se):
		return nil, lineErr(se.Line, se.Msg)
	case errors.Is(err, hybrid.ErrNoCommit):
		return nil, fail(name, args, 1, fmt.Sprintf("%s: COMMIT expected at line %d", name, strings.Count(input, "\n")+1))
	case err != nil:
		return nil, err
	}
	return nil, nil
}

// command runs one iptables command line, e.g. -t raw -F chain.
func (k *Kernel) command(fam int, name string, args []string) ([]byte, error) {
	tname := "filter"
	var rest []string
	verbose := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-v", "--verbose":
			verbose = true
		case "-t", "--table":
			if i+1 == len(args) {
				return nil, fail(name, args, 2, "option -t needs an argument")
			}
			i++
			tname = args[i]
		case "-w", "--wait":
			if i+1 < len(args) && isNumber(args[i+1]) {
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	t, err := k.getTable(fam, tname, true)
	if err != nil {
		return nil, fail(name, args, 3, err.Error())
	}
	work := t.clone()
	if verbose && len(rest) > 0 && (rest[0] == "-S" || rest[0] == "--list-rules") {
		return k.listVerbose(fam, work, rest)
	}
	out, err := k.do(work, rest)
	if err != nil {
		return nil, fail(name, args, 1, "iptables: "+err.Error())
	}
	if len(rest) > 0 && rest[0] != "-S" && rest[0] != "--list-rules" {
		k.fams[fam][tname] = work
		k.gen++
	}
	return []byte(out), nil
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// do applies one command (its tokens, unquoted) to a table.
func (k *Kernel) do(t *table, toks []string) (string, error) {
	if len(toks) == 0 {
		return "", fmt.Errorf("no command")
	}
	cmd, args := toks[0], toks[1:]
	chainArg := func() (*chain, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("%s needs a chain", cmd)
		}
		c := t.chains[args[0]]
		if c == nil {
			return nil, fmt.Errorf("No chain/target/match by that name.")
		}
		return c, nil
	}
	switch cmd {
	case "-A", "--append":
		c, err := chainArg()
		if err != nil {
			return "", err
		}
		r, err := k.rule(t, args[1:])
		if err != nil {
			return "", err
		}
		c.rules = append(c.rules, r)
	case "-I", "--insert":
		c, err := chainArg()
		if err != nil {
			return "", err
		}
		pos, spec := 1, args[1:]
		if len(spec) > 0 && isNumber(spec[0]) {
			pos, _ = strconv.Atoi(spec[0])
			spec = spec[1:]
		}
		if pos < 1 || pos > len(c.rules)+1 {
			return "", fmt.Errorf("Index of insertion too big.")
		}
		r, err := k.rule(t, spec)
		if err != nil {
			return "", err
		}
		c.rules = slices.Insert(c.rules, pos-1, r)
	case "-D", "--delete":
		c, err := chainArg()
		if err != nil {
			return "", err
		}
		if len(args) == 2 && isNumber(args[1]) {
			n, _ := strconv.Atoi(args[1])
			if n < 1 || n > len(c.rules) {
				return "", fmt.Errorf("Index of deletion too big.")
			}
			c.rules = slices.Delete(c.rules, n-1, n)
			break
		}
		r := canonical(args[1:])
		i := slices.IndexFunc(c.rules, func(x []string) bool { return slices.Equal(x, r) })
		if i < 0 {
			return "", fmt.Errorf("Bad rule (does a matching rule exist in that chain?).")
		}
		c.rules = slices.Delete(c.rules, i, i+1)
	case "-F", "--flush":
		if len(args) == 0 {
			for _, c := range t.chains {
				c.rules = nil
			}
			break
		}
		c, err := chainArg()
		if err != nil {
			return "", err
		}
		c.rules = nil
	case "-N", "--new-chain":
		if len(args) == 0 {
			return "", fmt.Errorf("-N needs a chain")
		}
		if t.chains[args[0]] != nil {
			return "", fmt.Errorf("Chain already exists.")
		}
		t.chains[args[0]] = &chain{name: args[0]}
	case "-X", "--delete-chain":
		var del []*chain
		if len(args) == 0 {
			for _, c := range t.chains {
				if !c.builtin {
					del = append(del, c)
				}
			}
		} else {
			c, err := chainArg()
			if err != nil {
				return "", err
			}
			if c.builtin {
				return "", fmt.Errorf("Can't delete built-in chain %s", c.name)
			}
			del = []*chain{c}
		}
		for _, c := range del {
			if len(c.rules) > 0 {
				return "", fmt.Errorf("Directory not empty (chain %s)", c.name)
			}
		}
		for _, c := range del {
			delete(t.chains, c.name)
		}
		for _, c := range del {
			if t.referenced(c.name) {
				return "", fmt.Errorf("Too many links (chain %s is in use)", c.name)
			}
		}
	case "-P", "--policy":
		c, err := chainArg()
		if err != nil {
			return "", err
		}
		if !c.builtin || len(args) < 2 {
			return "", fmt.Errorf("Bad built-in chain name")
		}
		c.policy = args[1]
	case "-S", "--list-rules":
		var cs []*chain
		if len(args) == 0 {
			cs = t.order()
		} else {
			c, err := chainArg()
			if err != nil {
				return "", err
			}
			cs = []*chain{c}
		}
		var b strings.Builder
		for _, c := range cs {
			if c.builtin {
				b.WriteString("-P " + c.name + " " + c.policy + "\n")
			} else {
				b.WriteString("-N " + c.name + "\n")
			}
		}
		for _, c := range cs {
			for _, r := range c.rules {
				b.WriteString("-A " + c.name)
				if len(r) > 0 {
					b.WriteString(" " + formatRule(r))
				}
				b.WriteByte('\n')
			}
		}
		return b.String(), nil
	default:
		return "", fmt.Errorf("unknown command %s", cmd)
	}
	return "", nil
}

// rule validates a rule's tokens and returns them in canonical form.
func (k *Kernel) rule(t *table, toks []string) ([]string, error) {
	r := canonical(toks)
	for i := 0; i+1 < len(r); i++ {
		switch r[i] {
		case "-j", "--jump", "-g", "--goto":
			tg := r[i+1]
			if c := t.chains[tg]; c != nil {
				if c.builtin {
					return nil, fmt.Errorf("Can't jump to built-in chain %s", tg)
				}
			} else if !targets[tg] {
				return nil, fmt.Errorf("Couldn't load target `%s':No such file or directory", tg)
			}
		case "--match-set":
			if k.SetExists != nil && !k.SetExists(r[i+1]) {
				return nil, fmt.Errorf("Set %s doesn't exist.", r[i+1])
			}
		}
	}
	return r, nil
}

func (t *table) referenced(name string) bool {
	for _, c := range t.chains {
		for _, r := range c.rules {
			for i := 0; i+1 < len(r); i++ {
				if (r[i] == "-j" || r[i] == "-g") && r[i+1] == name {
					return true
				}
			}
		}
	}
	return false
}

// canonical normalises a rule's tokens as the kernel stores them: long
// options for jumps spelled short, protocols as numbers.
func canonical(toks []string) []string {
	r := slices.Clone(toks)
	for i := range r {
		switch r[i] {
		case "--jump":
			r[i] = "-j"
		case "--goto":
			r[i] = "-g"
		case "--protocol":
			r[i] = "-p"
		}
		if i > 0 && r[i-1] == "-p" {
			if n, ok := hybrid.ParseIptablesProtocol(r[i]); ok {
				r[i] = strconv.Itoa(n)
			}
		}
	}
	return r
}

// formatRule prints canonical tokens as iptables-save does.
func formatRule(r []string) string {
	out := make([]string, len(r))
	for i, tok := range r {
		switch {
		case i > 0 && r[i-1] == "-p":
			n, _ := strconv.Atoi(tok)
			out[i] = hybrid.IptablesProtocolName(n)
		case i > 0 && r[i-1] == "--comment":
			out[i] = hybrid.SaveString(tok)
		default:
			out[i] = tok
		}
	}
	return strings.Join(out, " ")
}

// Generation returns a number bumped by every committed write (a restore's
// table transaction, a command that changes a table), as nf_tables'
// ruleset generation is. It has the type of iptables.GenerationFunc.
func (k *Kernel) Generation(ctx context.Context) (uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen, ctx.Err()
}

// Save returns iptables-save's output for one family ("ipv4" or "ipv6") and
// table, without the header and footer comments, or "" if the table was
// never created. For assertions in tests.
func (k *Kernel) Save(family, tableName string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.fams[familyIndex(family)][tableName]
	if t == nil {
		return ""
	}
	var w hybrid.SaveWriter
	t.writeSave(&w, false, true)
	return w.String()
}

func familyIndex(family string) int {
	if family == "ipv6" {
		return 1
	}
	return 0
}
