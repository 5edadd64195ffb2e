package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	nftd "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hybrid"
)

// NFTHost is what a trace runs against on a host of the nftables backend:
// moat's tables (bridge, ip and ip6 "moat") as `nft -j list ruleset`
// lists them (other tables are ignored). The packet is simulated through
// them with nftables' semantics: the bridge table's classification into
// the direction mark, the zone and notrack lookups of the ct-zone chain,
// the forward map's verdict, then the port's chain rule by rule. Only the
// expressions moat's renderer writes are understood; anything else makes
// the rule's outcome unknown.
type NFTHost struct {
	tables map[string]*nftTable // "ip moat"
	// Provenance, when known, gives the suggestion the port's groups.
	Provenance *Provenance
}

type nftTable struct {
	chains map[string]*nftChain
	sets   map[string]*nftSet
}

type nftChain struct {
	name  string
	hook  string
	rules []*nftRule
}

type nftRule struct {
	num     int
	comment string
	exprs   []json.RawMessage
	text    string
	// counted says the rule has a counter: packets and bytes.
	counted        bool
	packets, bytes uint64
}

type nftSet struct {
	keys  int
	elems []nftElem
}

type nftElem struct {
	key []json.RawMessage // one per key field
	val json.RawMessage   // map value, nil for a set
}

// LoadNFT reads `nft -j list ruleset` output.
func LoadNFT(r io.Reader) (*NFTHost, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("read nft -j output: %w", err)
	}
	h := &NFTHost{tables: map[string]*nftTable{}}
	table := func(family, name string) *nftTable {
		if name != nftd.IPTable.Name { // moat's three tables share the name
			return nil
		}
		k := family + " " + name
		t := h.tables[k]
		if t == nil {
			t = &nftTable{chains: map[string]*nftChain{}, sets: map[string]*nftSet{}}
			h.tables[k] = t
		}
		return t
	}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			var head struct {
				Family, Table, Name, Chain, Hook, Comment string
				Type                                      json.RawMessage
				Elem                                      []json.RawMessage
				Expr                                      []json.RawMessage
			}
			if kind == "metainfo" {
				continue
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return nil, fmt.Errorf("nft -j: %s: %w", kind, err)
			}
			switch kind {
			case "table":
				table(head.Family, head.Name)
			case "chain":
				if t := table(head.Family, head.Table); t != nil {
					c := t.chains[head.Name]
					if c == nil {
						c = &nftChain{name: head.Name}
						t.chains[head.Name] = c
					}
					c.hook = head.Hook
				}
			case "rule":
				t := table(head.Family, head.Table)
				if t == nil {
					continue
				}
				c := t.chains[head.Chain]
				if c == nil {
					c = &nftChain{name: head.Chain}
					t.chains[head.Chain] = c
				}
				r := &nftRule{num: len(c.rules) + 1, comment: head.Comment, exprs: head.Expr}
				r.text = ruleText(r.exprs)
				for _, e := range r.exprs {
					var x struct {
						Counter *struct{ Packets, Bytes uint64 } `json:"counter"`
					}
					if json.Unmarshal(e, &x) == nil && x.Counter != nil {
						r.counted, r.packets, r.bytes = true, x.Counter.Packets, x.Counter.Bytes
					}
				}
				c.rules = append(c.rules, r)
			case "set", "map":
				t := table(head.Family, head.Table)
				if t == nil {
					continue
				}
				s := &nftSet{keys: 1}
				var types []string
				if json.Unmarshal(head.Type, &types) == nil && len(types) > 0 {
					s.keys = len(types)
				}
				for _, e := range head.Elem {
					el, err := parseNFTElem(e, kind == "map", s.keys)
					if err != nil {
						return nil, fmt.Errorf("nft -j: %s %s: %w", kind, head.Name, err)
					}
					s.elems = append(s.elems, el)
				}
				t.sets[head.Name] = s
			}
		}
	}
	if h.tables[nftd.IPTable.String()] == nil && h.tables[nftd.IP6Table.String()] == nil {
		return nil, fmt.Errorf("no moat tables in the nft -j output (is this host's agent on --backend nftables?)")
	}
	return h, nil
}

func parseNFTElem(raw json.RawMessage, isMap bool, keys int) (nftElem, error) {
	var el nftElem
	key := raw
	if isMap {
		var pair []json.RawMessage
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return el, fmt.Errorf("map element %s", raw)
		}
		key, el.val = pair[0], pair[1]
	}
	var wrapped struct {
		Elem *struct {
			Val json.RawMessage `json:"val"`
		} `json:"elem"`
	}
	if json.Unmarshal(key, &wrapped) == nil && wrapped.Elem != nil {
		key = wrapped.Elem.Val
	}
	if keys > 1 {
		var c struct {
			Concat []json.RawMessage `json:"concat"`
		}
		if err := json.Unmarshal(key, &c); err != nil || len(c.Concat) != keys {
			return el, fmt.Errorf("element %s: want %d fields", key, keys)
		}
		el.key = c.Concat
	} else {
		el.key = []json.RawMessage{key}
	}
	return el, nil
}

// Trace resolves a query and simulates it through moat's tables.
func (h *NFTHost) Trace(q Query) (*Result, error) {
	pkt, port, err := resolve(q, h.tables[nftd.IPTable.String()] != nil, h.tables[nftd.IP6Table.String()] != nil, "nft -j list ruleset", h.findPort)
	if err != nil {
		return nil, err
	}
	return h.Simulate(pkt, port)
}

// findPort finds a port by id (or a prefix of one) or tap in the forward
// maps, and its addresses in the anti-spoofing set.
func (h *NFTHost) findPort(portID, tap string) (*PortRef, error) {
	if (portID == "") == (tap == "") {
		return nil, fmt.Errorf("give exactly one of --port and --tap")
	}
	ports := map[string]string{} // bridge → port id
	for _, fam := range []string{"ip", "ip6"} {
		t := h.tables[fam+" "+nftd.IPTable.Name]
		if t == nil || t.sets[nftrender.MapForward] == nil {
			continue
		}
		for _, el := range t.sets[nftrender.MapForward].elems {
			var br string
			if json.Unmarshal(el.key[0], &br) != nil {
				continue
			}
			id := ""
			if target, ok := verdictOf(el.val); ok {
				if pid, _, ok := nftrender.PortOfChain(strings.TrimPrefix(target, "jump ")); ok {
					id = pid
				}
			}
			if ports[br] == "" {
				ports[br] = id
			}
		}
	}
	var bridge string
	if tap != "" {
		b, ok := nftrender.BridgeOf(tap)
		if !ok || !strings.HasPrefix(tap, hybrid.TapPrefix) {
			return nil, fmt.Errorf("%s is not a tap device", tap)
		}
		bridge = b
	} else {
		id := strings.ToLower(strings.TrimSpace(portID))
		var matches []string
		for br, pid := range ports {
			if strings.HasPrefix(pid, id) || (pid == "" && strings.HasPrefix(id, strings.TrimPrefix(br, hybrid.BridgePrefix))) ||
				strings.HasPrefix(strings.TrimPrefix(br, hybrid.BridgePrefix), id) {
				matches = append(matches, br)
			}
		}
		sort.Strings(matches)
		switch len(matches) {
		case 0:
			return nil, fmt.Errorf("no port %q in moat's nftables forward map (%d ports)", portID, len(ports))
		case 1:
			bridge = matches[0]
		default:
			return nil, fmt.Errorf("port prefix %q is ambiguous: %s", portID, strings.Join(matches, ", "))
		}
	}
	if _, ok := ports[bridge]; !ok {
		return nil, fmt.Errorf("no rules for %s in moat's nftables forward map", bridge)
	}
	dev := strings.TrimPrefix(bridge, hybrid.BridgePrefix)
	ref := &PortRef{Devices: hybrid.DevicesOfTap(hybrid.TapPrefix + dev), ID: ports[bridge]}
	if ref.ID != "" {
		ref.Chains = hybrid.PortChains{In: nftrender.InChain(ref.ID), Out: nftrender.OutChain(ref.ID)}
	}
	for fam, name := range []string{"ip", "ip6"} {
		t := h.tables[name+" "+nftd.IPTable.Name]
		if t == nil || t.sets[nftrender.SetSpoof] == nil {
			continue
		}
		for _, el := range t.sets[nftrender.SetSpoof].elems {
			var br, mac string
			if len(el.key) != 3 || json.Unmarshal(el.key[0], &br) != nil || br != bridge || json.Unmarshal(el.key[1], &mac) != nil {
				continue
			}
			hw, err := net.ParseMAC(mac)
			if err != nil {
				continue
			}
			p := Pair{MAC: hw}
			if iv, ok := parseNFTInterval(el.key[2]); ok {
				if pfx, ok := iv.Prefix(); ok && pfx.Bits() > 0 {
					p.Prefix = pfx
				}
			}
			ref.Pairs[fam] = append(ref.Pairs[fam], p)
		}
	}
	return ref, nil
}

// Simulate runs a resolved packet through the tables.
func (h *NFTHost) Simulate(pkt *Packet, port *PortRef) (*Result, error) {
	fam := "ip"
	if pkt.IPv6 {
		fam = "ip6"
	}
	t := h.tables[fam+" "+nftd.IPTable.Name]
	if t == nil {
		return nil, fmt.Errorf("no %s moat table to trace the packet through", fam)
	}
	cp := *pkt
	pkt = &cp
	res := &Result{Tap: port.Tap, PortID: port.ID, Direction: port.Direction, Hook: port.Hook}
	s := &nftSim{h: h, t: t, fam: fam, pkt: pkt, port: port, res: res, allowed: -1}

	// The bridge table: a frame from the tap gets the direction bit.
	if br := h.tables[nftd.BridgeTable.String()]; br != nil && port.Direction == Egress {
		in := false
		if set := br.sets[nftrender.SetTaps]; set != nil {
			in = set.has(s, []any{port.Tap}) == Yes
		}
		if in {
			s.mark = nftrender.DirMark
		}
		res.Path = append(res.Path, Step{Table: nftd.BridgeTable.String(), Chain: nftrender.ChainMark, RuleNumber: 2,
			Rule:   "iifname @" + nftrender.SetTaps + " meta mark set meta mark | " + fmt.Sprintf("0x%x", nftrender.DirMark),
			Result: yesNo(in), Action: map[bool]string{true: "mark", false: ""}[in]})
	}
	if port.Hook == HookInput {
		res.Notes = append(res.Notes, "moat's nftables tables do not filter a VM's traffic to the host itself, as Neutron's INPUT rules (--physdev-is-bridged) never match there")
		s.finish(VerdictAccept)
		return res, nil
	}
	// ct-zone: notrack for stateless ports, else the port's zone.
	if set := t.sets[nftrender.SetStateless]; set != nil && set.has(s, []any{port.Bridge}) == Yes {
		s.notrack = true
		if pkt.State != StateUntracked {
			res.Notes = append(res.Notes, fmt.Sprintf("notrack makes the packet untracked: the filter chains see state UNTRACKED, not %s", pkt.State))
		}
		pkt.State = StateUntracked
	} else if m := t.sets[nftrender.MapZone]; m != nil {
		if v, ok := m.lookup(s, []any{port.Bridge}); ok {
			var z int
			if json.Unmarshal(v, &z) == nil {
				res.Zone = z
			}
		}
	}
	res.State = pkt.State.String()
	// filter-forward: the verdict map.
	fwd := t.chains[nftrender.ChainForward]
	if fwd == nil {
		return nil, fmt.Errorf("no %s chain in the %s moat table", nftrender.ChainForward, fam)
	}
	s.finish(s.run(fwd, 0))
	return res, nil
}

type nftSim struct {
	h       *NFTHost
	t       *nftTable
	fam     string
	pkt     *Packet
	port    *PortRef
	res     *Result
	mark    uint32
	notrack bool
	decided *Step
	steps   int
	// allowed is the path index of the last rule that returned the packet
	// out of a port chain (what let it through), -1 for none.
	allowed int
	// icmpv6 is set while a match on an ICMPv6 field is evaluated: nft
	// names ICMPv6 types with some of ICMP's words.
	icmpv6 bool
}

// run evaluates a chain and returns accept, drop, return (for a regular
// chain that fell off its end or returned) or unknown.
func (s *nftSim) run(c *nftChain, depth int) string {
	if depth > maxDepth {
		return VerdictUnknown
	}
	for _, r := range c.rules {
		s.steps++
		if s.steps > maxSteps {
			return VerdictUnknown
		}
		st := Step{Table: s.fam + " " + nftd.IPTable.Name, Chain: c.name, RuleNumber: r.num, Rule: r.text, Origin: nftRuleOrigin(r.comment, r.text, c.name, s.h.Provenance)}
		out, verdict := s.evalRule(r, &st)
		st.Result = out
		idx := len(s.res.Path)
		s.res.Path = append(s.res.Path, st)
		if out == Unknown {
			s.res.Unknown = append(s.res.Unknown, fmt.Sprintf("%s #%d: %s", c.name, r.num, unknownMatches(&st)))
			s.decided = &s.res.Path[idx]
			return VerdictUnknown
		}
		if out != Yes || verdict == "" {
			continue
		}
		s.res.Path[idx].Action = verdict
		switch {
		case verdict == "accept":
			s.decided = &s.res.Path[idx]
			return VerdictAccept
		case verdict == "drop":
			s.decided = &s.res.Path[idx]
			return VerdictDrop
		case verdict == "return":
			if _, _, ok := nftrender.PortOfChain(c.name); ok {
				s.allowed = idx
			}
			return "return"
		case strings.HasPrefix(verdict, "jump ") || strings.HasPrefix(verdict, "goto "):
			target := s.t.chains[verdict[5:]]
			if target == nil {
				s.res.Unknown = append(s.res.Unknown, "no chain "+verdict[5:])
				return VerdictUnknown
			}
			v := s.run(target, depth+1)
			if v != "return" || strings.HasPrefix(verdict, "goto ") {
				if v == "return" {
					return "return"
				}
				return v
			}
		}
	}
	return "return"
}

func unknownMatches(st *Step) string {
	var parts []string
	for _, m := range st.Matches {
		if m.Result == Unknown {
			parts = append(parts, m.Match+" ("+m.Note+")")
		}
	}
	return strings.Join(parts, "; ")
}

// finish records the verdict and the deciding rule.
func (s *nftSim) finish(v string) {
	res := s.res
	if v == "return" || v == "" {
		// Fell off the forward chain: its policy is accept.
		v = VerdictAccept
		if s.decided == nil && s.allowed >= 0 {
			s.decided = &res.Path[s.allowed]
		} else if s.decided == nil {
			res.Path = append(res.Path, Step{Table: s.fam + " " + nftd.IPTable.Name, Chain: nftrender.ChainForward, Rule: "policy accept", Result: Yes,
				Origin: &Origin{Kind: OriginPolicy, Text: "the chain's policy: moat's table does not handle the packet"}})
			s.decided = &res.Path[len(res.Path)-1]
		}
	}
	res.Verdict = v
	if res.State == "" {
		res.State = s.pkt.State.String()
	}
	if d := s.decided; d != nil {
		o := d.Origin
		if o == nil {
			o = &Origin{Kind: OriginOther, Text: "not part of moat's layout"}
		}
		res.DecidedBy = &Decision{Table: d.Table, Chain: d.Chain, RuleNumber: d.RuleNumber, Rule: d.Rule,
			Origin: o.Text, OriginKind: o.Kind, Rules: o.Rules}
		if v == VerdictDrop && o.Kind == OriginDefaultDrop {
			res.Rule, res.Suggestion, res.Notes = suggest(&sim{h: &Host{Provenance: s.h.Provenance}, pkt: s.pkt, port: s.port}, res.Notes)
		}
	}
	if s.pkt.Protocol == 94 {
		res.Notes = append(res.Notes, "protocol 94 is what iptables calls ipip; IP-in-IP is protocol 4 (ipencap)")
	}
	res.Packet = describePort(s.pkt, s.port)
}

func yesNo(b bool) Outcome {
	if b {
		return Yes
	}
	return No
}

// nftRuleOrigin is a rule's origin (nftOrigin) naming, for a security
// group rule, the group behind each set the rule's text looks up, when
// the provenance knows it (an address group and its name, or a remote
// group).
func nftRuleOrigin(comment, text, chain string, prov *Provenance) *Origin {
	o := nftOrigin(nftd.Origin(comment), chain, prov)
	if o.Kind != OriginSGRule || prov == nil {
		return o
	}
	var named []string
	for _, f := range strings.Fields(text) {
		name, ok := strings.CutPrefix(f, "@")
		if !ok {
			continue
		}
		if src, ok := prov.setSource(name); ok {
			named = append(named, "@"+name+" is "+src.String())
		}
	}
	if len(named) > 0 {
		o.Text += " (" + strings.Join(named, "; ") + ")"
	}
	return o
}

// nftOrigin reads a rule's origin tag (nftrender.OriginTag).
func nftOrigin(tag, chain string, prov *Provenance) *Origin {
	o := func(kind, text string) *Origin { return &Origin{Kind: kind, Text: text} }
	if ids, ok := strings.CutPrefix(tag, "sgr "); ok {
		org := &Origin{Kind: OriginSGRule, Text: "security group rule " + strings.ReplaceAll(ids, ",", ", ")}
		for _, id := range strings.Split(ids, ",") {
			org.Rules = append(org.Rules, SGRule{RuleID: id})
		}
		return org
	}
	switch tag {
	case OriginDefaultDrop:
		return o(tag, "default drop (sg-fallback): no security group rule allowed the packet")
	case OriginToDefaultDrop:
		return o(tag, "no security group rule matched: on to the default drop")
	case OriginAntiSpoofing:
		return o(tag, "anti-spoofing: the source IP/MAC pair is not one of the port's (fixed IPs, allowed address pairs)")
	case OriginEstablished:
		return o(tag, "a packet of a known connection (RELATED,ESTABLISHED)")
	case OriginInvalid:
		return o(tag, "INVALID state: conntrack does not know the packet's connection")
	case OriginDHCPClient:
		return o(tag, "DHCP client traffic of the VM (built-in)")
	case OriginDHCPProtection:
		return o(tag, "DHCP spoofing protection: the VM may not act as a DHCP server")
	case OriginDHCPReply:
		return o(tag, "DHCP reply to the VM (provider rule)")
	case OriginRAProtection:
		return o(tag, "the VM may not send router advertisements")
	case OriginICMPv6ND:
		return o(tag, "ICMPv6 MLD/neighbour discovery (built-in)")
	case OriginICMPv6Egress:
		return o(tag, "ICMPv6 from the VM (built-in)")
	case OriginICMPv6RA:
		return o(tag, "router advertisement to the VM (provider rule)")
	case OriginDispatch:
		return o(tag, "dispatch to the port's chain ("+nftrender.MapForward+")")
	case OriginPortSecurityDisabled:
		return o(tag, "port security disabled: every packet of the port is accepted")
	case OriginTrusted:
		return o(tag, "trusted port (device_owner network:*): every packet is accepted")
	case OriginRejectedPort:
		return o(tag, "a port whose rules cannot be built: its traffic is dropped")
	}
	return o(OriginOther, "not part of moat's layout")
}

// OriginRejectedPort is a rejected port's drop.
const OriginRejectedPort = string(hybrid.OriginRejectedPort)

// evalRule evaluates one rule: its matches in order, then its verdict.
func (s *nftSim) evalRule(r *nftRule, st *Step) (Outcome, string) {
	out := Yes
	verdict := ""
	for _, raw := range r.exprs {
		var e map[string]json.RawMessage
		if json.Unmarshal(raw, &e) != nil {
			return Unknown, ""
		}
		for k, v := range e {
			switch k {
			case "match":
				o, desc, note := s.match(v)
				st.Matches = append(st.Matches, MatchOutcome{Match: desc, Result: o, Note: note})
				out = and(out, o)
				if out == No {
					return No, ""
				}
			case "counter", "notrack", "mangle", "log":
			case "accept", "drop", "return":
				verdict = k
			case "jump", "goto":
				var tg struct{ Target string }
				_ = json.Unmarshal(v, &tg)
				verdict = k + " " + tg.Target
			case "vmap":
				var vm struct {
					Key  json.RawMessage `json:"key"`
					Data string          `json:"data"`
				}
				if json.Unmarshal(v, &vm) != nil {
					return Unknown, ""
				}
				keys, ok := s.values(vm.Key)
				m := s.t.sets[strings.TrimPrefix(vm.Data, "@")]
				if !ok || m == nil {
					st.Matches = append(st.Matches, MatchOutcome{Match: "vmap " + vm.Data, Result: Unknown, Note: "cannot evaluate the key"})
					return Unknown, ""
				}
				val, found := m.lookup(s, keys)
				st.Matches = append(st.Matches, MatchOutcome{Match: fmt.Sprintf("%v in %s", keys, vm.Data), Result: yesNo(found)})
				if !found {
					return No, ""
				}
				vd, _ := verdictOf(val)
				verdict = vd
				if vd == "accept" || vd == "drop" {
					st.Origin = nftOrigin(OriginPortSecurityDisabled, "", nil)
					if vd == "drop" {
						st.Origin = &Origin{Kind: OriginRejectedPort, Text: "a port whose rules cannot be built: its traffic is dropped"}
					} else {
						st.Origin.Text = "port security disabled, or a trusted network:* port: every packet is accepted"
					}
				}
			default:
				st.Matches = append(st.Matches, MatchOutcome{Match: k, Result: Unknown, Note: "an expression moat does not write"})
				return Unknown, ""
			}
		}
	}
	return out, verdict
}

// verdictOf reads a verdict value: {"accept": null}, {"jump": {"target": X}}.
func verdictOf(raw json.RawMessage) (string, bool) {
	var v map[string]json.RawMessage
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	for k, x := range v {
		switch k {
		case "accept", "drop", "return", "continue":
			return k, true
		case "jump", "goto":
			var tg struct{ Target string }
			if json.Unmarshal(x, &tg) == nil {
				return k + " " + tg.Target, true
			}
		}
	}
	return "", false
}

// values evaluates a key expression for the packet: a meta key, payload,
// a binop with a mark, or a concatenation. ok is false when the packet
// does not say.
func (s *nftSim) values(raw json.RawMessage) ([]any, bool) {
	var e map[string]json.RawMessage
	if json.Unmarshal(raw, &e) != nil {
		return nil, false
	}
	if c, ok := e["concat"]; ok {
		var parts []json.RawMessage
		if json.Unmarshal(c, &parts) != nil {
			return nil, false
		}
		var out []any
		for _, p := range parts {
			v, ok := s.values(p)
			if !ok {
				return nil, false
			}
			out = append(out, v...)
		}
		return out, true
	}
	v, ok := s.value(e)
	return []any{v}, ok
}

// value is one field of the packet: string (interface), uint32 (mark,
// numbers), netip.Addr, net.HardwareAddr, State.
func (s *nftSim) value(e map[string]json.RawMessage) (any, bool) {
	p := s.pkt
	if m, ok := e["meta"]; ok {
		var k struct{ Key string }
		_ = json.Unmarshal(m, &k)
		switch k.Key {
		case "iifname", "oifname":
			return s.port.Bridge, true
		case "mark":
			return s.mark, true
		case "l4proto":
			return uint32(p.Protocol), true
		}
		return nil, false
	}
	if b, ok := e["&"]; ok {
		var ops []json.RawMessage
		if json.Unmarshal(b, &ops) != nil || len(ops) != 2 {
			return nil, false
		}
		l, ok := s.values(ops[0])
		var mask uint32
		if !ok || len(l) != 1 || json.Unmarshal(ops[1], &mask) != nil {
			return nil, false
		}
		n, ok := l[0].(uint32)
		return n & mask, ok
	}
	if c, ok := e["ct"]; ok {
		var k struct{ Key string }
		_ = json.Unmarshal(c, &k)
		if k.Key == "state" {
			return p.State, true
		}
		return nil, false
	}
	if pl, ok := e["payload"]; ok {
		var f struct{ Protocol, Field string }
		_ = json.Unmarshal(pl, &f)
		switch f.Protocol + " " + f.Field {
		case "ip saddr", "ip6 saddr":
			return p.Src, true
		case "ip daddr", "ip6 daddr":
			return p.Dst, true
		case "ether saddr":
			if p.SrcMAC == nil {
				return nil, false
			}
			return p.SrcMAC, true
		}
		switch f.Field {
		case "sport", "dport":
			n := p.SrcPort
			if f.Field == "dport" {
				n = p.DstPort
			}
			if n < 0 {
				return nil, false
			}
			return uint32(n), true
		case "type", "code":
			n := p.ICMPType
			if f.Field == "code" {
				n = p.ICMPCode
			}
			if n < 0 {
				return nil, false
			}
			return uint32(n), true
		}
	}
	return nil, false
}

// payloadProto is the protocol a payload expression implies (nft folds
// `meta l4proto udp` into `udp dport`), -1 for none.
func payloadProto(e map[string]json.RawMessage, v6 bool) int {
	pl, ok := e["payload"]
	if !ok {
		return -1
	}
	var f struct{ Protocol string }
	_ = json.Unmarshal(pl, &f)
	switch f.Protocol {
	case "tcp":
		return 6
	case "udp":
		return 17
	case "sctp":
		return 132
	case "dccp":
		return 33
	case "udplite":
		return 136
	case "icmp":
		return 1
	case "icmpv6":
		return 58
	case "th":
		return -2 // any protocol with ports
	}
	return -1
}

// match evaluates one match expression.
func (s *nftSim) match(raw json.RawMessage) (Outcome, string, string) {
	var m struct {
		Op    string          `json:"op"`
		Left  json.RawMessage `json:"left"`
		Right json.RawMessage `json:"right"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return Unknown, string(raw), "unreadable"
	}
	desc := exprText(m.Left) + " " + opText(m.Op) + exprText(m.Right)
	var left map[string]json.RawMessage
	_ = json.Unmarshal(m.Left, &left)
	switch pp := payloadProto(left, s.fam == "ip6"); {
	case pp == -2 && !hasPorts(s.pkt.Protocol):
		return No, desc, "not a protocol with ports"
	case pp >= 0 && pp != s.pkt.Protocol:
		return No, desc, "another protocol"
	}
	keys, ok := s.values(m.Left)
	if !ok {
		return Unknown, desc, "the packet does not say"
	}
	s.icmpv6 = payloadProto(left, true) == 58
	defer func() { s.icmpv6 = false }()
	var got Outcome
	if strings.HasPrefix(string(bytes.TrimSpace(m.Right)), `"@`) {
		var name string
		_ = json.Unmarshal(m.Right, &name)
		set := s.t.sets[strings.TrimPrefix(name, "@")]
		if set == nil {
			return Unknown, desc, "no set " + name
		}
		got = set.has(s, keys)
	} else {
		got = s.equal(keys, m.Right)
	}
	if got == Unknown {
		return Unknown, desc, "cannot compare"
	}
	if m.Op == "!=" {
		got = yesNo(got == No)
	}
	return got, desc, ""
}

// equal compares a packet value with a literal right-hand side (a value,
// a prefix, a range, an anonymous set, or a list of flags).
func (s *nftSim) equal(keys []any, right json.RawMessage) Outcome {
	if len(keys) != 1 {
		return Unknown
	}
	k := keys[0]
	if st, ok := k.(State); ok {
		var names []string
		if json.Unmarshal(right, &names) != nil {
			var one string
			if json.Unmarshal(right, &one) != nil {
				return Unknown
			}
			names = []string{one}
		}
		for _, n := range names {
			if ps, err := ParseState(n); err == nil && ps == st {
				return Yes
			}
		}
		return No
	}
	var anon struct {
		Set []json.RawMessage `json:"set"`
	}
	if json.Unmarshal(right, &anon) == nil && anon.Set != nil {
		for _, el := range anon.Set {
			if s.fieldMatch(k, el) == Yes {
				return Yes
			}
		}
		return No
	}
	return s.fieldMatch(k, right)
}

// fieldMatch compares one value with one element field.
func (s *nftSim) fieldMatch(k any, el json.RawMessage) Outcome {
	switch v := k.(type) {
	case string:
		var x string
		if json.Unmarshal(el, &x) != nil {
			return Unknown
		}
		if p, ok := strings.CutSuffix(x, "*"); ok {
			return yesNo(strings.HasPrefix(v, p))
		}
		return yesNo(v == x)
	case uint32:
		var n uint32
		if json.Unmarshal(el, &n) == nil {
			return yesNo(v == n)
		}
		var r struct {
			Range []json.RawMessage `json:"range"`
		}
		if json.Unmarshal(el, &r) == nil && len(r.Range) == 2 {
			lo, ok1 := numOf(r.Range[0], s.icmpv6)
			hi, ok2 := numOf(r.Range[1], s.icmpv6)
			if ok1 && ok2 {
				return yesNo(v >= lo && v <= hi)
			}
		}
		if n, ok := numOf(el, s.icmpv6); ok {
			return yesNo(v == n)
		}
		return Unknown
	case netip.Addr:
		iv, ok := parseNFTInterval(el)
		if !ok {
			return Unknown
		}
		return yesNo(v.Compare(iv.Lo) >= 0 && v.Compare(iv.Hi) <= 0)
	case net.HardwareAddr:
		var x string
		if json.Unmarshal(el, &x) != nil {
			return Unknown
		}
		hw, err := net.ParseMAC(x)
		if err != nil {
			return Unknown
		}
		return yesNo(bytes.Equal(hw, v))
	}
	return Unknown
}

// numOf reads a number, in decimal or hex, or a name nft prints for one
// (protocols, ICMP or with icmpv6 ICMPv6 types).
func numOf(raw json.RawMessage, icmpv6 bool) (uint32, bool) {
	var n uint32
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var name string
	if json.Unmarshal(raw, &name) != nil {
		return 0, false
	}
	if x, err := strconv.ParseUint(name, 0, 32); err == nil {
		return uint32(x), true
	}
	if n, ok := nftICMPv6Names[name]; ok && icmpv6 {
		return n, true
	}
	if n, ok := nftICMPNames[name]; ok {
		return n, true
	}
	if p, ok := hybrid.ParseIptablesProtocol(name); ok {
		return uint32(p), true
	}
	return 0, false
}

// nftICMPNames are the ICMP and ICMPv6 type names nft prints.
var nftICMPNames = map[string]uint32{
	"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
	"router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
	"timestamp-request": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
	"address-mask-request": 17, "address-mask-reply": 18,
	"packet-too-big": 2, "mld-listener-query": 130, "mld-listener-report": 131, "mld-listener-done": 132,
	"mld-listener-reduction": 132, "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135,
	"nd-neighbor-advert": 136, "nd-redirect": 137, "router-renumbering": 138, "ind-neighbor-solicit": 141,
	"ind-neighbor-advert": 142, "mld2-listener-report": 143,
}

// nftICMPv6Names differ from ICMP's for the same words.
var nftICMPv6Names = map[string]uint32{"destination-unreachable": 1, "time-exceeded": 3, "parameter-problem": 4, "echo-request": 128, "echo-reply": 129}

// parseNFTInterval reads an address, prefix or range element.
func parseNFTInterval(raw json.RawMessage) (nftd.Interval, bool) {
	var a string
	if json.Unmarshal(raw, &a) == nil {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return nftd.Interval{}, false
		}
		return nftd.Interval{Lo: addr, Hi: addr}, true
	}
	var p struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return nftd.Interval{}, false
	}
	if p.Prefix != nil {
		pfx, err := netip.ParsePrefix(p.Prefix.Addr + "/" + strconv.Itoa(p.Prefix.Len))
		if err != nil {
			return nftd.Interval{}, false
		}
		return nftd.PrefixInterval(pfx.Masked())
	}
	if len(p.Range) == 2 {
		lo, err1 := netip.ParseAddr(p.Range[0])
		hi, err2 := netip.ParseAddr(p.Range[1])
		if err1 == nil && err2 == nil {
			return nftd.Interval{Lo: lo, Hi: hi}, true
		}
	}
	return nftd.Interval{}, false
}

// has reports whether a set holds the key.
func (set *nftSet) has(s *nftSim, keys []any) Outcome {
	_, ok := set.find(s, keys)
	return yesNo(ok)
}

func (set *nftSet) lookup(s *nftSim, keys []any) (json.RawMessage, bool) {
	return set.find(s, keys)
}

func (set *nftSet) find(s *nftSim, keys []any) (json.RawMessage, bool) {
	if len(keys) != set.keys {
		return nil, false
	}
	for _, el := range set.elems {
		all := true
		for i, k := range keys {
			if s.fieldMatch(k, el.key[i]) != Yes {
				all = false
				break
			}
		}
		if all {
			return el.val, true
		}
	}
	return nil, false
}

// ruleText renders a rule's expressions in nft's words, for the path.
func ruleText(exprs []json.RawMessage) string {
	var parts []string
	for _, raw := range exprs {
		var e map[string]json.RawMessage
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		for k, v := range e {
			switch k {
			case "match":
				var m struct {
					Op          string
					Left, Right json.RawMessage
				}
				_ = json.Unmarshal(v, &m)
				parts = append(parts, exprText(m.Left)+" "+opText(m.Op)+exprText(m.Right))
			case "counter", "notrack", "accept", "drop", "return":
				parts = append(parts, k)
			case "jump", "goto":
				var tg struct{ Target string }
				_ = json.Unmarshal(v, &tg)
				parts = append(parts, k+" "+tg.Target)
			case "vmap":
				var vm struct {
					Key  json.RawMessage
					Data string
				}
				_ = json.Unmarshal(v, &vm)
				parts = append(parts, exprText(vm.Key)+" vmap "+vm.Data)
			case "mangle":
				var mg struct{ Key, Value json.RawMessage }
				_ = json.Unmarshal(v, &mg)
				parts = append(parts, exprText(mg.Key)+" set "+exprText(mg.Value))
			default:
				parts = append(parts, k)
			}
		}
	}
	return strings.Join(parts, " ")
}

func opText(op string) string {
	switch op {
	case "==", "in", "":
		return ""
	}
	return op + " "
}

// exprText renders one expression.
func exprText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var p []string
		for _, x := range list {
			p = append(p, exprText(x))
		}
		return strings.Join(p, ",")
	}
	var e map[string]json.RawMessage
	if json.Unmarshal(raw, &e) != nil {
		return string(raw)
	}
	for k, v := range e {
		switch k {
		case "meta", "ct":
			var x struct{ Key string }
			_ = json.Unmarshal(v, &x)
			if k == "meta" && (x.Key == "iifname" || x.Key == "oifname") {
				return x.Key
			}
			return k + " " + x.Key
		case "payload":
			var x struct{ Protocol, Field string }
			_ = json.Unmarshal(v, &x)
			return x.Protocol + " " + x.Field
		case "prefix":
			var x struct {
				Addr string
				Len  int
			}
			_ = json.Unmarshal(v, &x)
			return x.Addr + "/" + strconv.Itoa(x.Len)
		case "range":
			var x []json.RawMessage
			_ = json.Unmarshal(v, &x)
			if len(x) == 2 {
				return exprText(x[0]) + "-" + exprText(x[1])
			}
		case "concat":
			var x []json.RawMessage
			_ = json.Unmarshal(v, &x)
			var p []string
			for _, y := range x {
				p = append(p, exprText(y))
			}
			return strings.Join(p, " . ")
		case "set":
			return "{ " + exprText(v) + " }"
		case "&", "|":
			var x []json.RawMessage
			_ = json.Unmarshal(v, &x)
			if len(x) == 2 {
				right := exprText(x[1])
				var n uint64
				if json.Unmarshal(x[1], &n) == nil {
					right = "0x" + strconv.FormatUint(n, 16) // a mark
				}
				return exprText(x[0]) + " " + k + " " + right
			}
		case "map":
			var x struct{ Key, Data json.RawMessage }
			_ = json.Unmarshal(v, &x)
			return exprText(x.Key) + " map " + exprText(x.Data)
		}
	}
	return string(raw)
}

// Explain lists a port's rules on an nftables host: its entries in the
// forward map and the zone map, and its chains in full, with counters and
// what each rule stands for.
func (h *NFTHost) Explain(portID, tap string) (*Explanation, error) {
	port, err := h.findPort(portID, tap)
	if err != nil {
		return nil, err
	}
	ex := &Explanation{Tap: port.Tap, PortID: port.ID}
	for _, fam := range []struct{ name, family string }{{"ip", "IPv4"}, {"ip6", "IPv6"}} {
		t := h.tables[fam.name+" "+nftd.IPTable.Name]
		if t == nil {
			continue
		}
		table := fam.name + " " + nftd.IPTable.Name
		for _, m := range []string{nftrender.MapZone, nftrender.MapForward, nftrender.SetStateless} {
			set := t.sets[m]
			if set == nil {
				continue
			}
			for _, el := range set.elems {
				var br string
				if json.Unmarshal(el.key[0], &br) != nil || br != port.Bridge {
					continue
				}
				row := ExplainRow{Family: fam.family, Table: table, Chain: "@" + m, Rule: exprText(el.key[0])}
				if len(el.key) > 1 {
					mark := exprText(el.key[1])
					if n, ok := numOf(el.key[1], false); ok {
						mark = "0x" + strconv.FormatUint(uint64(n), 16)
					}
					row.Rule += " . " + mark
				}
				switch m {
				case nftrender.MapZone:
					row.Rule += " : " + exprText(el.val)
					row.Kind, row.Meaning = OriginCTZone, "conntrack zone "+exprText(el.val)+" of the port"
				case nftrender.SetStateless:
					row.Kind, row.Meaning = OriginStateless, "stateless security group: notrack, conntrack skips the port's packets"
				default:
					v, _ := verdictOf(el.val)
					row.Rule += " : " + v
					row.Kind, row.Meaning = OriginDispatch, "dispatch: "+v
				}
				ex.Rows = append(ex.Rows, row)
			}
		}
		if port.ID == "" {
			continue
		}
		for _, name := range []string{nftrender.InChain(port.ID), nftrender.OutChain(port.ID)} {
			c := t.chains[name]
			if c == nil {
				continue
			}
			for _, r := range c.rules {
				o := nftRuleOrigin(r.comment, r.text, name, h.Provenance)
				ex.Rows = append(ex.Rows, ExplainRow{Family: fam.family, Table: table, Chain: name, Number: r.num,
					Packets: r.packets, Bytes: r.bytes, Rule: r.text, Meaning: o.Text, Kind: o.Kind, Rules: o.Rules})
				ex.Counters = ex.Counters || r.counted
			}
		}
	}
	if len(ex.Rows) == 0 {
		return nil, fmt.Errorf("moat's nftables tables hold nothing for %s", port.Bridge)
	}
	return ex, nil
}
