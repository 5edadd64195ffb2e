package nftables

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// The JSON `nft -j list table` prints (libnftables-json(5)), as far as
// the syncer reads it. Rule expressions are not decoded: a rule is known
// by the fingerprint in its comment.
type jsonTable struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type jsonChain struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Hook   string `json:"hook"`
	Prio   *int   `json:"prio"`
	Policy string `json:"policy"`
	Dev    any    `json:"dev"`
}

type jsonRule struct {
	Family  string `json:"family"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Comment string `json:"comment"`
}

type jsonSet struct {
	Family string            `json:"family"`
	Table  string            `json:"table"`
	Name   string            `json:"name"`
	Type   json.RawMessage   `json:"type"`
	Map    json.RawMessage   `json:"map"`
	Flags  []string          `json:"flags"`
	Elem   []json.RawMessage `json:"elem"`
	// Set options the syncer never writes; a set that has them is
	// replaced.
	Timeout *int `json:"timeout"`
	Size    *int `json:"size"`
}

// knownKeys are the top-level keys of the objects the syncer reads.
var knownKeys = []string{"metainfo", "table", "chain", "rule", "set", "map"}

// parseTable reads one table from `nft -j list table` output. A table
// that holds anything the syncer would not write, or cannot express as a
// difference, comes back with replace set (and why), never as an error:
// the repair for it is to replace the table.
func parseTable(id TableID, data []byte) (*tableState, error) {
	var raw struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("read %s: bad JSON from nft: %w", id, err)
	}
	st := newTableState()
	replace := func(format string, args ...any) {
		if !st.replace {
			st.replace, st.why = true, fmt.Sprintf(format, args...)
		}
	}
	seenTable := false
	for _, obj := range raw.Nftables {
		for key := range obj {
			if !slices.Contains(knownKeys, key) {
				replace("it holds a %s, which moat does not write", key)
			}
		}
		if v, ok := obj["table"]; ok {
			var t jsonTable
			if err := json.Unmarshal(v, &t); err != nil {
				return nil, fmt.Errorf("read %s: table: %w", id, err)
			}
			if t.Family == string(id.Family) && t.Name == id.Name {
				seenTable = true
			}
		}
		if v, ok := obj["chain"]; ok {
			var c jsonChain
			if err := json.Unmarshal(v, &c); err != nil {
				return nil, fmt.Errorf("read %s: chain: %w", id, err)
			}
			if !ours(id, c.Family, c.Table) {
				continue
			}
			if err := checkName("chain", c.Name); err != nil {
				replace("%v", err)
				continue
			}
			cs := &chainState{}
			if c.Hook != "" {
				if c.Prio == nil || c.Dev != nil {
					replace("chain %s: a hook moat does not write", c.Name)
					continue
				}
				policy := c.Policy
				if policy == "" {
					policy = "accept"
				}
				cs.base = &baseSpec{typ: c.Type, hook: c.Hook, prio: *c.Prio, policy: policy}
			}
			st.chains[c.Name] = cs
		}
		if v, ok := obj["rule"]; ok {
			var r jsonRule
			if err := json.Unmarshal(v, &r); err != nil {
				return nil, fmt.Errorf("read %s: rule: %w", id, err)
			}
			if !ours(id, r.Family, r.Table) {
				continue
			}
			c, ok := st.chains[r.Chain]
			if !ok {
				if checkName("chain", r.Chain) == nil {
					replace("rule in chain %s, listed before its chain", r.Chain)
				}
				continue
			}
			_, fp := splitComment(r.Comment)
			c.fps = append(c.fps, fp)
		}
		for _, kind := range []string{"set", "map"} {
			v, ok := obj[kind]
			if !ok {
				continue
			}
			var s jsonSet
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("read %s: %s: %w", id, kind, err)
			}
			if !ours(id, s.Family, s.Table) {
				continue
			}
			ss, err := parseSet(kind == "map", &s)
			if err != nil {
				replace("%s %s: %v", kind, s.Name, err)
				continue
			}
			st.sets[s.Name] = ss
		}
	}
	if !seenTable {
		return nil, fmt.Errorf("read %s: nft listed no such table", id)
	}
	return st, nil
}

func ours(id TableID, family, table string) bool {
	return family == string(id.Family) && table == id.Name
}

// typeByName is the data types by the names nft -j gives them.
var typeByName = map[string]DataType{}

func init() {
	for _, d := range []DataType{TypeIfName, TypeMark, TypeEtherAddr, TypeIPv4Addr, TypeIPv6Addr, TypeInetService, TypeVerdict, TypeCTZone} {
		typeByName[d.name] = d
	}
}

// stringOrList decodes a JSON string or list of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("type %s: %w", raw, err)
	}
	return many, nil
}

func parseSet(isMap bool, s *jsonSet) (*setState, error) {
	if err := checkName(setKind(isMap), s.Name); err != nil {
		return nil, err
	}
	if s.Timeout != nil || s.Size != nil {
		return nil, fmt.Errorf("has a timeout or size, which moat does not write")
	}
	keyNames, err := stringOrList(s.Type)
	if err != nil {
		return nil, err
	}
	var keyTypes []DataType
	for _, n := range keyNames {
		d, ok := typeByName[n]
		if !ok || d.value {
			return nil, fmt.Errorf("key type %s, which moat does not write", n)
		}
		keyTypes = append(keyTypes, d)
	}
	if len(keyTypes) == 0 {
		return nil, fmt.Errorf("no key type")
	}
	sig := strings.Join(keyNames, " . ")
	var valType DataType
	if isMap {
		vn, err := stringOrList(s.Map)
		if err != nil {
			return nil, err
		}
		if len(vn) != 1 {
			return nil, fmt.Errorf("map value %s, which moat does not write", s.Map)
		}
		d, ok := typeByName[vn[0]]
		if !ok {
			return nil, fmt.Errorf("map value %s, which moat does not write", vn[0])
		}
		valType = d
		sig += " : " + vn[0]
	}
	interval := false
	if len(s.Flags) > 0 {
		flags := slices.Sorted(slices.Values(s.Flags))
		sig += " flags " + strings.Join(flags, ",")
		interval = slices.Contains(flags, "interval")
	}
	ss := &setState{isMap: isMap, sig: sig, elems: make(map[string]string, len(s.Elem))}
	for _, e := range s.Elem {
		key, val, err := parseElement(keyTypes, valType, isMap, interval, e)
		if err != nil {
			return nil, fmt.Errorf("element %s: %w", e, err)
		}
		ss.elems[key] = val
	}
	return ss, nil
}

// parseElement turns one listed element into the key and value text the
// syncer writes, through the same terms, so that they compare equal.
func parseElement(keys []DataType, val DataType, isMap, interval bool, raw json.RawMessage) (string, string, error) {
	var keyRaw, valRaw json.RawMessage = raw, nil
	if isMap {
		var pair []json.RawMessage
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return "", "", fmt.Errorf("a map element is not a [key, value] pair")
		}
		keyRaw, valRaw = pair[0], pair[1]
	}
	keyRaw, err := unwrapElem(keyRaw)
	if err != nil {
		return "", "", err
	}
	fields := []json.RawMessage{keyRaw}
	if len(keys) > 1 {
		var c struct {
			Concat []json.RawMessage `json:"concat"`
		}
		if err := json.Unmarshal(keyRaw, &c); err != nil || len(c.Concat) != len(keys) {
			return "", "", fmt.Errorf("want a concatenation of %d fields", len(keys))
		}
		fields = c.Concat
	}
	parts := make([]string, len(keys))
	for i, f := range fields {
		t, err := parseValue(keys[i], f)
		if err != nil {
			return "", "", err
		}
		if parts[i], err = keys[i].canonical(t, interval); err != nil {
			return "", "", err
		}
	}
	if !isMap {
		return strings.Join(parts, " . "), "", nil
	}
	t, err := parseValue(val, valRaw)
	if err != nil {
		return "", "", err
	}
	v, err := val.canonical(t, false)
	if err != nil {
		return "", "", err
	}
	return strings.Join(parts, " . "), v, nil
}

// unwrapElem takes the value out of {"elem": {"val": ..., ...}}, the form
// of an element with a comment, counter or timeout.
func unwrapElem(raw json.RawMessage) (json.RawMessage, error) {
	var e struct {
		Elem *struct {
			Val json.RawMessage `json:"val"`
		} `json:"elem"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`{"elem"`)) {
		if err := json.Unmarshal(raw, &e); err != nil || e.Elem == nil {
			return nil, fmt.Errorf("bad elem object")
		}
		return e.Elem.Val, nil
	}
	return raw, nil
}

// parseValue reads one field of type d.
func parseValue(d DataType, raw json.RawMessage) (Term, error) {
	var str string
	var num uint64
	isStr := json.Unmarshal(raw, &str) == nil
	isNum := !isStr && json.Unmarshal(raw, &num) == nil
	switch d {
	case TypeIfName:
		if isStr {
			return IfName(str), nil
		}
	case TypeMark, TypeCTZone:
		if isNum {
			return Num(num), nil
		}
	case TypeEtherAddr:
		if isStr {
			return ParseMAC(str), nil
		}
	case TypeInetService:
		if isNum {
			return Num(num), nil
		}
		var r struct {
			Range []uint64 `json:"range"`
		}
		if json.Unmarshal(raw, &r) == nil && len(r.Range) == 2 {
			return NumRange(r.Range[0], r.Range[1]), nil
		}
	case TypeIPv4Addr, TypeIPv6Addr:
		return parseIP(raw)
	case TypeVerdict:
		var v map[string]*struct {
			Target string `json:"target"`
		}
		if json.Unmarshal(raw, &v) == nil && len(v) == 1 {
			for k, target := range v {
				switch k {
				case "accept":
					return Accept, nil
				case "drop":
					return Drop, nil
				case "jump", "goto":
					if target == nil {
						break
					}
					if k == "jump" {
						return Jump(target.Target), nil
					}
					return Goto(target.Target), nil
				}
			}
		}
	}
	return Term{}, fmt.Errorf("%s is not a %s moat writes", raw, d.name)
}

func parseIP(raw json.RawMessage) (Term, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Term{}, err
		}
		return Addr(a), nil
	}
	var v struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return Term{}, err
	}
	switch {
	case v.Prefix != nil:
		a, err := netip.ParseAddr(v.Prefix.Addr)
		if err != nil {
			return Term{}, err
		}
		return Prefix(netip.PrefixFrom(a, v.Prefix.Len)), nil
	case len(v.Range) == 2:
		lo, err := netip.ParseAddr(v.Range[0])
		if err != nil {
			return Term{}, err
		}
		hi, err := netip.ParseAddr(v.Range[1])
		if err != nil {
			return Term{}, err
		}
		return IP(Interval{Lo: lo, Hi: hi}), nil
	}
	return Term{}, fmt.Errorf("%s is not an address, prefix or range", raw)
}

// parseTableNames reads `nft -j list tables`.
func parseTableNames(data []byte) (map[TableID]bool, error) {
	var d struct {
		Nftables []struct {
			Table *jsonTable `json:"table"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("bad JSON from nft list tables: %w", err)
	}
	out := map[TableID]bool{}
	for _, o := range d.Nftables {
		if o.Table != nil {
			out[TableID{Family: knftables.Family(o.Table.Family), Name: o.Table.Name}] = true
		}
	}
	return out, nil
}
