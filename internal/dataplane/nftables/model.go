package nftables

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/knftables"
)

// TableID names a table: its family and name.
type TableID struct {
	Family knftables.Family
	Name   string
}

func (id TableID) String() string { return string(id.Family) + " " + id.Name }

func (id TableID) compare(o TableID) int {
	if c := strings.Compare(string(id.Family), string(o.Family)); c != 0 {
		return c
	}
	return strings.Compare(id.Name, o.Name)
}

// moat's own tables (docs: the nftables layout): the bridge table marks
// the direction, the ip and ip6 tables set zones and filter.
var (
	BridgeTable = TableID{knftables.BridgeFamily, "moat"}
	IPTable     = TableID{knftables.IPv4Family, "moat"}
	IP6Table    = TableID{knftables.IPv6Family, "moat"}
)

// MoatTables are the tables a Syncer owns unless told otherwise.
func MoatTables() []TableID { return []TableID{BridgeTable, IPTable, IP6Table} }

// Ruleset is the desired content of the tables a Syncer owns. An owned
// table the Ruleset does not hold is deleted.
type Ruleset struct {
	Tables []*Table
}

// Table is one table's desired content.
type Table struct {
	ID      TableID
	Comment string
	Chains  []*Chain
	Sets    []*Set
}

// Chain is a chain and its rules, in order. Base is nil for a regular
// chain (one that rules and verdict maps jump to). A Rules slice given to
// a Syncer is never changed in place afterwards (build a new slice for new
// rules): the syncer keeps what it compiled from it by its identity.
type Chain struct {
	Name  string
	Base  *BaseChain
	Rules []Rule
}

// BaseChain attaches a chain to a hook.
type BaseChain struct {
	Type knftables.BaseChainType
	Hook knftables.BaseChainHook
	// Priority is a number ("-300") or a name nft knows for the family
	// ("raw", "filter"); it is written as the number.
	Priority knftables.BaseChainPriority
	// Policy is accept when empty.
	Policy knftables.BaseChainPolicy
}

// Rule is one rule: its terms and a comment (moat's origin tag, e.g.
// "sgr <rule-id>"). The comment is cleaned (see cleanComment) and the
// syncer appends its fingerprint to it (see Origin).
type Rule struct {
	Terms   []Term
	Comment string
}

// R is a Rule with comment and terms, for compact literals.
func R(comment string, terms ...Term) Rule { return Rule{Terms: terms, Comment: comment} }

// Set is a named set, or a map when Value is set. Key has one type, or
// several for a concatenation. Interval sets take prefixes and ranges
// and refuse overlapping elements (use Merge).
type Set struct {
	Name     string
	Key      []DataType
	Value    DataType
	Interval bool
	// Comment is written when the set is created; a changed comment
	// alone does not recreate the set.
	Comment  string
	Elements []Element
}

// Element is a set element (Value is the zero Term) or a map element.
type Element struct {
	Key   []Term
	Value Term
}

// E is an element of the key terms, for compact literals.
func E(key ...Term) Element { return Element{Key: key} }

// M is a map element.
func M(value Term, key ...Term) Element { return Element{Key: key, Value: value} }

// DataType is the type of a set's key field or a map's value.
type DataType struct {
	name   string // as `nft -j` lists it
	typ    string // usable after `type`, or "" (then the set uses typeof)
	typeof string // the expression usable after `typeof`
	value  bool   // only as a map value, never in a key
}

// The data types moat's sets and maps use.
var (
	TypeIfName      = DataType{name: "ifname", typ: "ifname", typeof: "iifname"}
	TypeMark        = DataType{name: "mark", typ: "mark", typeof: "meta mark"}
	TypeEtherAddr   = DataType{name: "ether_addr", typ: "ether_addr", typeof: "ether saddr"}
	TypeIPv4Addr    = DataType{name: "ipv4_addr", typ: "ipv4_addr", typeof: "ip saddr"}
	TypeIPv6Addr    = DataType{name: "ipv6_addr", typ: "ipv6_addr", typeof: "ip6 saddr"}
	TypeInetService = DataType{name: "inet_service", typ: "inet_service", typeof: "th dport"}
	// TypeVerdict makes a verdict map.
	TypeVerdict = DataType{name: "verdict", typ: "verdict", typeof: "verdict", value: true}
	// TypeCTZone makes a map to conntrack zones (`ct zone set iifname map
	// @m`); nft has no type name for it, so such a map is declared with
	// typeof (and listed as "integer").
	TypeCTZone = DataType{name: "integer", typeof: "ct zone", value: true}
)

func (d DataType) String() string { return d.name }

// canonical checks a term as a value of type d and returns it as it is
// written and as nft lists it back, so that what the syncer wrote and
// what it reads compare equal.
func (d DataType) canonical(t Term, interval bool) (string, error) {
	if err := t.check(); err != nil {
		return "", err
	}
	bad := func() (string, error) {
		return "", fmt.Errorf("%s is not a value of type %s", t, d.name)
	}
	switch d {
	case TypeIfName:
		if t.kind != termIfName {
			return bad()
		}
	case TypeMark:
		if (t.kind != termNum && t.kind != termHex) || t.n > 0xffffffff {
			return bad()
		}
		t = Hex(t.n)
	case TypeEtherAddr:
		if t.kind != termMAC {
			return bad()
		}
	case TypeIPv4Addr, TypeIPv6Addr:
		if t.kind != termIP || t.ip.Lo.Is4() != (d == TypeIPv4Addr) {
			return bad()
		}
		if !interval && !t.ip.Single() {
			return "", fmt.Errorf("%s: a prefix or range needs an interval set", t)
		}
	case TypeInetService:
		switch {
		case t.kind == termNum && t.n <= 0xffff:
		case t.kind == termNumRange && t.m <= 0xffff:
			if !interval && t.n != t.m {
				return "", fmt.Errorf("%s: a range needs an interval set", t)
			}
			t = NumRange(t.n, t.m)
		default:
			return bad()
		}
	case TypeVerdict:
		if !t.isVerdict() {
			return bad()
		}
	case TypeCTZone:
		if t.kind != termNum || t.n > 0xffff {
			return bad()
		}
	default:
		return "", fmt.Errorf("unknown data type")
	}
	return t.String(), nil
}

// The compiled form of a Ruleset: names checked, references resolved,
// every rule and element rendered once.
type wantTable struct {
	id      TableID
	comment string
	chains  map[string]*wantChain
	sets    map[string]*wantSet
}

type wantChain struct {
	name  string
	base  *baseSpec
	rules []wantRule
	fps   []string // the rules' fingerprints
}

// baseSpec is a base chain's hook as the kernel lists it.
type baseSpec struct {
	typ, hook, policy string
	prio              int
}

func (b *baseSpec) String() string {
	if b == nil {
		return "regular"
	}
	return fmt.Sprintf("type %s hook %s priority %d; policy %s;", b.typ, b.hook, b.prio, b.policy)
}

func sameBase(a, b *baseSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

type wantRule struct {
	body    string // the terms
	comment string // as written: the cleaned comment and the fingerprint
	fp      string
	chains  []string // jumped to
	sets    []string // referenced
}

type wantSet struct {
	name    string
	isMap   bool
	sig     string // key and value types and flags, as the kernel lists them
	decl    string // what goes between the braces of `add set`
	elems   map[string]string
	targets map[string]string // element key → chain its verdict names
}

// fingerprintLen is the number of hex digits of a rule's fingerprint.
const fingerprintLen = 12

// fingerprint identifies a rule's content in the kernel. nft -j lists
// rules as expression trees that do not compare with the text moat wrote,
// so the syncer writes a hash of that text into the rule's comment and,
// when it reads the kernel back (first start, drift), compares hashes: a
// rule somebody changed or added has none or another one.
//
// It only has to tell moat's own renderings apart (a writer that wants
// to forge one can change the tables anyway), so a fast 64-bit FNV-1a,
// cut to 48 bits, does: a changed rule goes unnoticed with a chance of
// one in 2^48.
func fingerprint(body, comment string) string {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(body); i++ {
		h = (h ^ uint64(body[i])) * prime
	}
	h *= prime // the separator, a 0 byte
	for i := 0; i < len(comment); i++ {
		h = (h ^ uint64(comment[i])) * prime
	}
	const digits = "0123456789abcdef"
	var out [fingerprintLen]byte
	for i := range out {
		out[i] = digits[h>>(60-4*i)&0xf]
	}
	return string(out[:])
}

// kernelComment is the comment a rule is written with: the origin, a
// space and '#' and the fingerprint.
func kernelComment(comment, fp string) string {
	c := cleanComment(comment, maxCommentLen-fingerprintLen-2)
	if c == "" {
		return "#" + fp
	}
	return c + " #" + fp
}

// Origin is the comment moat gave a rule, without the fingerprint the
// syncer appended (for `moat trace` and `moat explain`, which read the
// kernel's comments).
func Origin(comment string) string {
	o, _ := splitComment(comment)
	return o
}

func splitComment(c string) (origin, fp string) {
	i := strings.LastIndexByte(c, '#')
	if i < 0 || len(c)-i-1 != fingerprintLen || (i > 0 && c[i-1] != ' ') {
		return c, ""
	}
	for _, r := range c[i+1:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return c, ""
		}
	}
	return strings.TrimSuffix(c[:i], " "), c[i+1:]
}

// compile checks a Ruleset against the tables the syncer owns and renders
// it. Every error names the table and object it is about.
func compile(rs *Ruleset, owned []TableID) (map[TableID]*wantTable, error) {
	return compileCached(rs, owned, nil)
}

// chainCache keeps the compiled form of regular chains between compiles,
// keyed by the identity of their Rules slice: a caller that renders an
// unchanged chain into the same slice again (nftrender's Renderer does)
// costs a map lookup instead of rendering and hashing every rule. Hence
// the rule of Chain.Rules: a slice given to Apply is never changed in
// place afterwards. Entries no compile used last time are dropped.
type chainCache struct {
	mu        sync.Mutex
	cur, prev map[chainKey]*wantChain
}

type chainKey struct {
	family knftables.Family
	name   string
	first  *Rule
	n      int
}

func (cc *chainCache) get(k chainKey) *wantChain {
	if wc := cc.cur[k]; wc != nil {
		return wc
	}
	if wc := cc.prev[k]; wc != nil {
		cc.cur[k] = wc
		return wc
	}
	return nil
}

// compileCached is compile with a chain cache (nil: none).
func compileCached(rs *Ruleset, owned []TableID, cc *chainCache) (map[TableID]*wantTable, error) {
	if cc != nil {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.cur == nil {
			cc.cur = map[chainKey]*wantChain{}
		}
		defer func() { cc.prev, cc.cur = cc.cur, make(map[chainKey]*wantChain, len(cc.cur)) }()
	}
	if rs == nil {
		return nil, fmt.Errorf("no ruleset")
	}
	out := map[TableID]*wantTable{}
	for _, t := range rs.Tables {
		if t == nil {
			return nil, fmt.Errorf("nil table")
		}
		if !slices.Contains(owned, t.ID) {
			return nil, fmt.Errorf("table %s: not one of the syncer's tables (%s)", t.ID, tableList(owned))
		}
		if _, dup := out[t.ID]; dup {
			return nil, fmt.Errorf("table %s: given twice", t.ID)
		}
		wt, err := compileTable(t, cc)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t.ID, err)
		}
		out[t.ID] = wt
	}
	return out, nil
}

func tableList(ids []TableID) string {
	var s []string
	for _, id := range ids {
		s = append(s, id.String())
	}
	return strings.Join(s, ", ")
}

func compileTable(t *Table, cc *chainCache) (*wantTable, error) {
	wt := &wantTable{id: t.ID, comment: cleanComment(t.Comment, maxCommentLen), chains: map[string]*wantChain{}, sets: map[string]*wantSet{}}
	for _, s := range t.Sets {
		if s == nil {
			return nil, fmt.Errorf("nil set")
		}
		kind := "set"
		if s.Value != (DataType{}) {
			kind = "map"
		}
		if err := checkName(kind, s.Name); err != nil {
			return nil, err
		}
		if _, dup := wt.sets[s.Name]; dup {
			return nil, fmt.Errorf("%s %s: a set or map of that name is given twice", kind, s.Name)
		}
		ws, err := compileSet(s)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, s.Name, err)
		}
		wt.sets[s.Name] = ws
	}
	for _, c := range t.Chains {
		if c == nil {
			return nil, fmt.Errorf("nil chain")
		}
		if err := checkName("chain", c.Name); err != nil {
			return nil, err
		}
		if _, dup := wt.chains[c.Name]; dup {
			return nil, fmt.Errorf("chain %s: given twice", c.Name)
		}
		var key chainKey
		if cc != nil && c.Base == nil && len(c.Rules) > 0 {
			key = chainKey{t.ID.Family, c.Name, &c.Rules[0], len(c.Rules)}
			if wc := cc.get(key); wc != nil {
				wt.chains[c.Name] = wc
				continue
			}
		}
		wc, err := compileChain(t.ID.Family, c)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", c.Name, err)
		}
		if key.first != nil {
			cc.cur[key] = wc
		}
		wt.chains[c.Name] = wc
	}
	// References: a rule or verdict names a regular chain of the table,
	// a lookup names one of its sets or maps.
	regular := func(name string) error {
		c, ok := wt.chains[name]
		switch {
		case !ok:
			return fmt.Errorf("no chain %s in the table", name)
		case c.base != nil:
			return fmt.Errorf("chain %s is a base chain (a verdict can only name a regular chain)", name)
		}
		return nil
	}
	for _, name := range sortedKeys(wt.chains) {
		for i, r := range wt.chains[name].rules {
			for _, target := range r.chains {
				if err := regular(target); err != nil {
					return nil, fmt.Errorf("chain %s rule %d: %w", name, i+1, err)
				}
			}
			for _, set := range r.sets {
				if _, ok := wt.sets[set]; !ok {
					return nil, fmt.Errorf("chain %s rule %d: no set or map %s in the table", name, i+1, set)
				}
			}
		}
	}
	for _, name := range sortedKeys(wt.sets) {
		ws := wt.sets[name]
		for _, key := range sortedKeys(ws.targets) {
			if err := regular(ws.targets[key]); err != nil {
				return nil, fmt.Errorf("map %s element %s: %w", name, key, err)
			}
		}
	}
	return wt, nil
}

func compileChain(family knftables.Family, c *Chain) (*wantChain, error) {
	wc := &wantChain{name: c.Name, rules: make([]wantRule, 0, len(c.Rules))}
	if b := c.Base; b != nil {
		prio, err := knftables.ParsePriority(family, string(b.Priority))
		if err != nil {
			return nil, fmt.Errorf("priority %q: %w", b.Priority, err)
		}
		switch b.Type {
		case knftables.FilterType, knftables.NATType, knftables.RouteType:
		default:
			return nil, fmt.Errorf("type %q: want filter, nat or route", b.Type)
		}
		switch b.Hook {
		case knftables.PreroutingHook, knftables.InputHook, knftables.ForwardHook, knftables.OutputHook, knftables.PostroutingHook:
		default:
			return nil, fmt.Errorf("hook %q: want prerouting, input, forward, output or postrouting", b.Hook)
		}
		policy := string(b.Policy)
		if policy == "" {
			policy = string(knftables.AcceptPolicy)
		}
		if policy != string(knftables.AcceptPolicy) && policy != string(knftables.DropPolicy) {
			return nil, fmt.Errorf("policy %q: want accept or drop", policy)
		}
		wc.base = &baseSpec{typ: string(b.Type), hook: string(b.Hook), prio: prio, policy: policy}
	}
	for i, r := range c.Rules {
		wr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		wc.rules = append(wc.rules, wr)
		wc.fps = append(wc.fps, wr.fp)
	}
	return wc, nil
}

func compileRule(r Rule) (wantRule, error) {
	if len(r.Terms) == 0 {
		return wantRule{}, fmt.Errorf("no terms")
	}
	var wr wantRule
	var b strings.Builder
	b.Grow(96)
	for i, t := range r.Terms {
		if err := t.check(); err != nil {
			return wantRule{}, err
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		t.writeTo(&b)
		if c, ok := t.chainRef(); ok {
			wr.chains = append(wr.chains, c)
		}
		if t.kind == termRef {
			wr.sets = append(wr.sets, t.s)
		}
	}
	wr.body = b.String()
	wr.fp = fingerprint(wr.body, r.Comment)
	wr.comment = kernelComment(r.Comment, wr.fp)
	return wr, nil
}

func compileSet(s *Set) (*wantSet, error) {
	if len(s.Key) == 0 {
		return nil, fmt.Errorf("no key type")
	}
	ws := &wantSet{name: s.Name, isMap: s.Value != (DataType{}), elems: map[string]string{}, targets: map[string]string{}}
	var names, typs, typeofs []string
	for _, d := range s.Key {
		if d.name == "" || d.value {
			return nil, fmt.Errorf("key type %q is not a key type", d.name)
		}
		names, typs, typeofs = append(names, d.name), append(typs, d.typ), append(typeofs, d.typeof)
	}
	sig := strings.Join(names, " . ")
	if ws.isMap {
		if s.Value.name == "" {
			return nil, fmt.Errorf("no value type")
		}
		sig += " : " + s.Value.name
	}
	if s.Interval {
		sig += " flags interval"
	}
	ws.sig = sig
	decl := "type " + strings.Join(typs, " . ")
	if ws.isMap {
		decl += " : " + s.Value.typ
	}
	if slices.Contains(typs, "") || ws.isMap && s.Value.typ == "" {
		decl = "typeof " + strings.Join(typeofs, " . ")
		if ws.isMap {
			decl += " : " + s.Value.typeof
		}
	}
	decl += ";"
	if s.Interval {
		decl += " flags interval;"
	}
	if c := cleanComment(s.Comment, maxCommentLen); c != "" {
		decl += ` comment "` + c + `";`
	}
	ws.decl = decl

	// The last key field's intervals, per value of the others, to refuse
	// overlaps as the kernel would (with a clearer message).
	groups := map[string][]Interval{}
	for i, e := range s.Elements {
		if len(e.Key) != len(s.Key) {
			return nil, fmt.Errorf("element %d: %d key fields, the set has %d", i+1, len(e.Key), len(s.Key))
		}
		parts := make([]string, len(e.Key))
		for j, t := range e.Key {
			c, err := s.Key[j].canonical(t, s.Interval)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i+1, err)
			}
			if j < len(e.Key)-1 && !pointTerm(t) {
				return nil, fmt.Errorf("element %d: only the last field of a concatenation can be a range", i+1)
			}
			parts[j] = c
		}
		key := strings.Join(parts, " . ")
		val := ""
		switch {
		case ws.isMap && e.Value.kind == termNone:
			return nil, fmt.Errorf("element %s: no value", key)
		case !ws.isMap && e.Value.kind != termNone:
			return nil, fmt.Errorf("element %s: a set element has no value", key)
		case ws.isMap:
			v, err := s.Value.canonical(e.Value, false)
			if err != nil {
				return nil, fmt.Errorf("element %s: %w", key, err)
			}
			val = v
			if c, ok := e.Value.chainRef(); ok {
				ws.targets[key] = c
			}
		}
		if old, dup := ws.elems[key]; dup {
			if old != val {
				return nil, fmt.Errorf("element %s: given twice with different values (%s, %s)", key, old, val)
			}
			continue
		}
		ws.elems[key] = val
		if last := e.Key[len(e.Key)-1]; s.Interval && last.kind == termIP {
			g := strings.Join(parts[:len(parts)-1], " . ")
			groups[g] = append(groups[g], last.ip)
		}
	}
	for _, g := range sortedKeys(groups) {
		if a, b, ok := overlaps(groups[g]); ok {
			return nil, fmt.Errorf("elements %s and %s overlap (an interval set refuses that; merge them with Merge)", a, b)
		}
	}
	return ws, nil
}

// pointTerm reports whether a key term is a single value.
func pointTerm(t Term) bool {
	switch t.kind {
	case termIP:
		return t.ip.Single()
	case termNumRange:
		return t.n == t.m
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
