package trace

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Host is what a trace runs against: both families' rules, the ipsets,
// and (when the rules were compiled by moat) where they came from. Traces
// compile rules and index chains as they go, so a Host is not safe for
// concurrent use.
type Host struct {
	IPv4, IPv6 *Ruleset
	// Sets are the ipsets; nil when unknown, which makes every set match
	// an unknown outcome.
	Sets IPSets
	// Provenance maps rules to security group rules; nil for dumps.
	Provenance *Provenance

	idx *hostIndex
}

// Provenance says which security group rules produced the rules of the
// port chains, and which groups each port carries. moat knows it for the
// rules it compiles (firewall.RuleSources); a dump from a Neutron host
// does not carry it.
type Provenance struct {
	Rules map[RuleKey][]SGRule
	// Groups holds each port's security groups, by port id.
	Groups map[string][]string
	// Sets names what each ipset (nftables set) holds, by set name: a
	// remote group's members or an address group's addresses. Remote
	// groups and address groups name their sets alike (N + ethertype +
	// id), so only the host state tells them apart.
	Sets map[string]SetSource
}

// SetSource is the group behind a set.
type SetSource struct {
	// AddressGroup: an address group; else a remote security group.
	AddressGroup bool   `json:"address_group,omitempty"`
	ID           string `json:"id"`
	// Name is the address group's name, "" when unknown.
	Name string `json:"name,omitempty"`
}

// String names the group for a trace's output (a name as a quoted Go
// string: a user's name is shown, never interpreted).
func (s SetSource) String() string {
	if !s.AddressGroup {
		return "security group " + s.ID
	}
	out := "address group " + s.ID
	if s.Name != "" {
		out += " " + strconv.Quote(s.Name)
	}
	return out
}

// setSource is what prov says a set holds.
func (prov *Provenance) setSource(name string) (SetSource, bool) {
	if prov == nil {
		return SetSource{}, false
	}
	s, ok := prov.Sets[name]
	return s, ok
}

// RuleKey names a rule of a port chain by family, chain and text.
type RuleKey struct {
	IPv6  bool
	Chain string
	Rule  string
}

// SGRule is one security group rule.
type SGRule = hybrid.SGRuleRef

// Verdicts.
const (
	VerdictAccept  = "ACCEPT"
	VerdictDrop    = "DROP"
	VerdictReject  = "REJECT"
	VerdictUnknown = "unknown"
)

// Result is a trace.
type Result struct {
	// Packet describes the packet and where it crosses the host.
	Packet string `json:"packet"`
	// Port is the port's tap device and, when known, id.
	Tap    string `json:"tap"`
	PortID string `json:"port_id,omitempty"`
	// Direction and Hook as traced.
	Direction Direction `json:"direction"`
	Hook      Hook      `json:"hook"`
	Verdict   string    `json:"verdict"`
	Path      []Step    `json:"path"`
	DecidedBy *Decision `json:"decided_by"`
	// Suggestion is the command that would allow the packet, for a drop
	// by the default rule.
	Suggestion string `json:"suggestion"`
	// Rule is the suggestion as a rule (nil without one); the JSON output
	// keeps the command only.
	Rule  *SuggestedRule `json:"-"`
	Notes []string       `json:"notes,omitempty"`
	// Unknown lists what the trace could not evaluate on its way.
	Unknown []string `json:"unknown,omitempty"`
	// Zone is the conntrack zone the raw table gave the packet (0: none).
	Zone int `json:"zone,omitempty"`
	// State is the conntrack state the filter table saw.
	State string `json:"state"`
}

// Step is one rule (or policy) the packet met.
type Step struct {
	Table      string `json:"table"`
	Chain      string `json:"chain"`
	RuleNumber int    `json:"rule_number"` // 0 for a chain policy
	Rule       string `json:"rule"`
	// Result is yes (the rule matched), no, or unknown.
	Result  Outcome        `json:"result"`
	Matches []MatchOutcome `json:"matches,omitempty"`
	// Action is what the rule did: "jump X", "RETURN", "ACCEPT", ...;
	// empty for rules that did not match.
	Action string `json:"action,omitempty"`
	// Skipped counts the rules before this one in the chain that were not
	// evaluated because they require another device (physdev, -i, -o).
	Skipped int `json:"skipped,omitempty"`
	// Origin says what the rule stands for, for matched rules.
	Origin *Origin `json:"origin,omitempty"`

	rule *Rule
}

// MatchOutcome is one condition of a rule and its outcome.
type MatchOutcome struct {
	Match  string  `json:"match"`
	Result Outcome `json:"result"`
	Note   string  `json:"note,omitempty"`
}

// Decision is the rule that decided.
type Decision struct {
	Table      string `json:"table"`
	Chain      string `json:"chain"`
	RuleNumber int    `json:"rule_number"`
	Rule       string `json:"rule"`
	// Origin is a one-line description of what the rule stands for.
	Origin string `json:"origin"`
	// OriginKind is a stable name of the origin's category (see Origin).
	OriginKind string `json:"origin_kind"`
	// Rules are the security group rules behind it, when known.
	Rules []SGRule `json:"security_group_rules,omitempty"`
}

// maxSteps bounds a trace, against rule loops in hand-written input (the
// kernel refuses loops; a file need not).
const maxSteps = 100000

// maxDepth is the kernel's limit of nested jumps (XT_MAX_CHAIN_DEPTH... the
// stack of ip_tables is bounded by the number of chains; 1024 is ample).
const maxDepth = 1024

// Trace resolves a query against the host's rules and simulates it.
func (h *Host) Trace(q Query) (*Result, error) {
	pkt, port, err := h.Resolve(q)
	if err != nil {
		return nil, err
	}
	return h.Simulate(pkt, port)
}

// PortRef is the port a packet crosses: its devices, id when known, and
// the direction and hook.
type PortRef struct {
	hybrid.Devices
	ID        string
	Direction Direction
	Hook      Hook
	// Chains are the port's chains (empty names when the port is not
	// filtered).
	Chains hybrid.PortChains
	// Pairs are the (prefix, MAC) pairs of the port's anti-spoofing chain,
	// per family; Fixed are its fixed addresses, from the DHCP rules.
	Pairs [2][]Pair
	Fixed [2][]netip.Addr
}

// Pair is an allowed (source prefix, MAC) pair.
type Pair struct {
	Prefix netip.Prefix // invalid for a MAC-only pair
	MAC    net.HardwareAddr
}

// Resolve turns a query into a packet: it finds the port, fills in the
// devices the frame crosses and the defaults (the port's own address and
// MAC for the VM's side of the packet).
func (h *Host) Resolve(q Query) (*Packet, *PortRef, error) {
	return resolve(q, h.IPv4 != nil, h.IPv6 != nil, "iptables-save", h.findPort)
}

// resolve is Resolve for any kind of host: have4 and have6 say which
// families it has rules for (dump names the input a missing family
// needs), find finds the port.
func resolve(q Query, have4, have6 bool, dump string, find func(portID, tap string) (*PortRef, error)) (*Packet, *PortRef, error) {
	dir := q.Direction
	switch dir {
	case Ingress, Egress:
	case "":
		return nil, nil, fmt.Errorf("give the direction: ingress (to the VM) or egress (from the VM)")
	default:
		return nil, nil, fmt.Errorf("direction %q: want ingress or egress", dir)
	}
	hook := q.Hook
	switch hook {
	case "":
		hook = HookForward
	case HookForward, HookInput:
	default:
		return nil, nil, fmt.Errorf("hook %q: want forward or input", hook)
	}
	if hook == HookInput && dir != Egress {
		return nil, nil, fmt.Errorf("--hook input is for packets from the VM to the host: use --direction egress")
	}

	// The family comes from the addresses given.
	var src, dst netip.Addr
	var err error
	if q.Src != "" {
		if src, err = parseAddr(q.Src); err != nil {
			return nil, nil, fmt.Errorf("--src: %w", err)
		}
	}
	if q.Dst != "" {
		if dst, err = parseAddr(q.Dst); err != nil {
			return nil, nil, fmt.Errorf("--dst: %w", err)
		}
	}
	if src.IsValid() && dst.IsValid() && src.Is4() != dst.Is4() {
		return nil, nil, fmt.Errorf("--src %s and --dst %s are of different families", src, dst)
	}
	if !src.IsValid() && !dst.IsValid() {
		remote := "--src (the remote address)"
		if dir == Egress {
			remote = "--dst (the remote address)"
		}
		return nil, nil, fmt.Errorf("give %s; the port's own address is found in the rules", remote)
	}
	v6 := (src.IsValid() && src.Is6()) || (dst.IsValid() && dst.Is6())
	fam := 0
	if v6 {
		fam = 1
		if !have6 {
			return nil, nil, fmt.Errorf("no IPv6 rules to trace an IPv6 packet through (%s output is needed)", strings.Replace(dump, "iptables", "ip6tables", 1))
		}
	} else if !have4 {
		return nil, nil, fmt.Errorf("no IPv4 rules to trace an IPv4 packet through (%s output is needed)", dump)
	}

	port, err := find(q.Port, q.Tap)
	if err != nil {
		return nil, nil, err
	}
	port.Direction, port.Hook = dir, hook

	// The VM's own side defaults to the port's address (and MAC).
	own := func() (netip.Addr, error) {
		for _, a := range port.Fixed[fam] {
			return a, nil
		}
		for _, p := range port.Pairs[fam] {
			if p.Prefix.IsValid() && p.Prefix.IsSingleIP() {
				return p.Prefix.Addr(), nil
			}
		}
		return netip.Addr{}, fmt.Errorf("the rules do not show an address of port %s for this family: give the VM's address too", port.Tap)
	}
	if dir == Ingress && !dst.IsValid() {
		if dst, err = own(); err != nil {
			return nil, nil, err
		}
	}
	if dir == Egress && !src.IsValid() {
		if src, err = own(); err != nil {
			return nil, nil, err
		}
	}

	pkt := &Packet{IPv6: v6, Src: src, Dst: dst}
	if q.Protocol == "" {
		return nil, nil, fmt.Errorf("give --protocol (a number, or a name such as tcp, udp, icmp, ipip)")
	}
	if pkt.Protocol, _, err = ParseProtocol(q.Protocol, v6); err != nil {
		return nil, nil, err
	}
	if pkt.SrcPort, err = parseOptInt(q.SrcPort, "--sport", 65535); err != nil {
		return nil, nil, err
	}
	if pkt.DstPort, err = parseOptInt(q.DstPort, "--dport", 65535); err != nil {
		return nil, nil, err
	}
	if pkt.ICMPType, err = parseOptInt(q.ICMPType, "--icmp-type", 255); err != nil {
		return nil, nil, err
	}
	if pkt.ICMPCode, err = parseOptInt(q.ICMPCode, "--icmp-code", 255); err != nil {
		return nil, nil, err
	}
	if (pkt.SrcPort >= 0 || pkt.DstPort >= 0) && !hasPorts(pkt.Protocol) {
		return nil, nil, fmt.Errorf("protocol %s has no ports; drop --sport/--dport", protoName(pkt.Protocol))
	}
	if (pkt.ICMPType >= 0 || pkt.ICMPCode >= 0) && pkt.Protocol != 1 && pkt.Protocol != 58 {
		return nil, nil, fmt.Errorf("--icmp-type/--icmp-code need protocol icmp (IPv4) or ipv6-icmp (IPv6)")
	}
	if pkt.ICMPCode >= 0 && pkt.ICMPType < 0 {
		return nil, nil, fmt.Errorf("--icmp-code needs --icmp-type")
	}
	if q.SrcMAC != "" {
		if pkt.SrcMAC, err = net.ParseMAC(q.SrcMAC); err != nil {
			return nil, nil, fmt.Errorf("--src-mac: %w", err)
		}
	} else if dir == Egress {
		// From the VM: the port's MAC (the one paired with the source
		// address, else the first one).
		for _, p := range port.Pairs[fam] {
			if pkt.SrcMAC == nil || (p.Prefix.IsValid() && p.Prefix.Contains(src)) {
				pkt.SrcMAC = p.MAC
			}
		}
	}
	state := q.State
	if state == "" {
		state = "new"
	}
	if pkt.State, err = ParseState(state); err != nil {
		return nil, nil, err
	}

	// The devices netfilter sees: with br_netfilter, -i/-o are the bridge
	// and physdev the bridge ports.
	pkt.InDev = port.Bridge
	switch {
	case hook == HookInput:
		pkt.PhysIn = port.Tap
	case dir == Ingress:
		pkt.PhysIn, pkt.PhysOut, pkt.OutDev = port.BridgeVeth, port.Tap, port.Bridge
	default:
		pkt.PhysIn, pkt.PhysOut, pkt.OutDev = port.Tap, port.BridgeVeth, port.Bridge
	}
	return pkt, port, nil
}

func hasPorts(proto int) bool {
	switch proto {
	case 6, 17, 33, 132, 136:
		return true
	}
	return false
}

func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil && p.IsSingleIP() {
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

// hostIndex is what findPort needs, computed once per Host: a batch
// traces thousands of packets through the same rules.
type hostIndex struct {
	taps  map[string]bool
	known []string // sorted
	ports map[string]*PortRef
}

func (h *Host) index() *hostIndex {
	if h.idx != nil {
		return h.idx
	}
	x := &hostIndex{taps: map[string]bool{}, ports: map[string]*PortRef{}}
	for _, rs := range []*Ruleset{h.IPv4, h.IPv6} {
		if rs != nil {
			for _, t := range rs.Taps() {
				x.taps[t] = true
			}
		}
	}
	for t := range x.taps {
		x.known = append(x.known, t)
	}
	sort.Strings(x.known)
	h.idx = x
	return x
}

// findPort resolves --port (an id or a prefix) or --tap to a tap the rules
// know, and reads the port's addresses from its chains. The result is a
// copy the caller may change.
func (h *Host) findPort(portID, tap string) (*PortRef, error) {
	if (portID == "") == (tap == "") {
		return nil, fmt.Errorf("give exactly one of --port and --tap")
	}
	x := h.index()
	listKnown := func() string {
		switch {
		case len(x.known) == 0:
			return "the rules name no tap devices"
		case len(x.known) > 10:
			return "the rules name " + strconv.Itoa(len(x.known)) + " taps, e.g. " + strings.Join(x.known[:10], ", ")
		}
		return "the rules name " + strings.Join(x.known, ", ")
	}
	if portID != "" {
		id := strings.ToLower(strings.TrimSpace(portID))
		if len(id) >= hybrid.DevIDLen {
			tap = hybrid.TapName(id)
		} else {
			// The taps are sorted: those with the prefix are adjacent.
			i := sort.SearchStrings(x.known, hybrid.TapPrefix+id)
			var matches []string
			for ; i < len(x.known) && strings.HasPrefix(x.known[i], hybrid.TapPrefix+id); i++ {
				matches = append(matches, x.known[i])
			}
			switch len(matches) {
			case 0:
				return nil, fmt.Errorf("no port %q in the rules (%s)", portID, listKnown())
			case 1:
				tap = matches[0]
			default:
				if len(matches) > 10 {
					matches = append(matches[:10], "...")
				}
				return nil, fmt.Errorf("port prefix %q is ambiguous: %s", portID, strings.Join(matches, ", "))
			}
		}
	}
	if !x.taps[tap] {
		return nil, fmt.Errorf("no rules for %s (%s)", tap, listKnown())
	}
	ref := x.ports[tap]
	if ref == nil {
		ref = h.portRef(tap)
		x.ports[tap] = ref
	}
	c := *ref
	if portID != "" && len(portID) > hybrid.DevIDLen {
		c.ID = portID
	}
	return &c, nil
}

func (h *Host) portRef(tap string) *PortRef {
	ref := &PortRef{Devices: hybrid.DevicesOfTap(tap)}
	if h.Provenance != nil {
		for id := range h.Provenance.Groups {
			if strings.HasPrefix(id, tap[3:]) {
				ref.ID = id
			}
		}
	}
	// The port's chains: under any wrap prefix whose i chain exists.
	for _, rs := range []*Ruleset{h.IPv4, h.IPv6} {
		if rs == nil || rs.Table("filter") == nil || ref.Chains.In != "" {
			continue
		}
		t := rs.Table("filter")
		for _, wrap := range rs.wraps() {
			pc := hybrid.PortChainsUnder(wrap, strings.TrimPrefix(tap, hybrid.TapPrefix))
			if t.Chain(pc.In) != nil {
				ref.Chains = pc
				break
			}
		}
	}
	if ref.Chains.In != "" {
		for fam, rs := range []*Ruleset{h.IPv4, h.IPv6} {
			if rs != nil && rs.Table("filter") != nil {
				ref.Pairs[fam], ref.Fixed[fam] = portAddresses(rs, ref.Chains)
			}
		}
	}
	return ref
}

// portAddresses reads a port's anti-spoofing pairs (s chain) and fixed
// addresses (the DHCP reply rules of the i chain, "-d IP/32 ... --sport 67").
func portAddresses(rs *Ruleset, pc hybrid.PortChains) ([]Pair, []netip.Addr) {
	t := rs.Table("filter")
	var pairs []Pair
	if s := t.Chain(pc.Spoof); s != nil {
		for _, r := range s.Rules {
			cr := r.compile()
			if cr.target.kind != targetReturn {
				continue
			}
			var p Pair
			for _, it := range cr.items {
				switch {
				case it.kind == itemSrc && !it.neg && it.unknown == "":
					p.Prefix = it.pfx
				case it.kind == itemMAC && !it.neg && it.unknown == "":
					p.MAC = it.mac
				}
			}
			if p.MAC != nil {
				pairs = append(pairs, p)
			}
		}
	}
	var fixed []netip.Addr
	if c := t.Chain(pc.In); c != nil {
		for _, r := range c.Rules {
			cr := r.compile()
			var dst netip.Prefix
			dhcp := false
			for _, it := range cr.items {
				switch {
				case it.kind == itemDst && !it.neg:
					dst = it.pfx
				case it.kind == itemSport && len(it.ranges) == 1 && (it.ranges[0].lo == 67 || it.ranges[0].lo == 547):
					dhcp = true
				}
			}
			if dhcp && dst.IsValid() && dst.IsSingleIP() && !dst.Addr().IsMulticast() && dst.Addr() != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				fixed = append(fixed, dst.Addr())
			}
		}
	}
	return pairs, fixed
}

// Simulate sends a resolved packet through the rules.
func (h *Host) Simulate(pkt *Packet, port *PortRef) (*Result, error) {
	rs := h.IPv4
	if pkt.IPv6 {
		rs = h.IPv6
	}
	fam := "IPv4"
	if pkt.IPv6 {
		fam = "IPv6"
	}
	if rs == nil {
		return nil, fmt.Errorf("no %s rules to trace an %s packet through", fam, fam)
	}
	cp := *pkt // the raw table may change its state
	pkt = &cp
	res := &Result{Tap: port.Tap, PortID: port.ID, Direction: port.Direction, Hook: port.Hook}
	s := &sim{h: h, rs: rs, res: res, pkt: pkt, port: port, allowedBy: -1}

	// raw PREROUTING: conntrack zone or notrack. A drop there is final.
	if raw := rs.Table("raw"); raw != nil {
		v := s.traverse(raw, "PREROUTING")
		if v != VerdictAccept {
			s.finish(v)
			return res, nil
		}
	} else {
		res.Notes = append(res.Notes, "no raw table in the rules: no conntrack zone or notrack applied")
	}
	if s.notrack {
		if pkt.State != StateUntracked {
			res.Notes = append(res.Notes, fmt.Sprintf("CT --notrack makes the packet untracked: the filter table sees state UNTRACKED, not %s", pkt.State))
		}
		pkt.State = StateUntracked
	}
	res.State = pkt.State.String()

	filter := rs.Table("filter")
	if filter == nil {
		return nil, fmt.Errorf("no filter table in the %s rules", fam)
	}
	hookChain := "FORWARD"
	if port.Hook == HookInput {
		hookChain = "INPUT"
	}
	s.finish(s.traverse(filter, hookChain))
	return res, nil
}

func describePort(pkt *Packet, port *PortRef) string {
	where := "to the VM: in on " + port.BridgeVeth + ", out on " + port.Tap
	if port.Direction == Egress {
		where = "from the VM: in on " + port.Tap + ", out on " + port.BridgeVeth
		if port.Hook == HookInput {
			where = "from the VM to the host itself: in on " + port.Tap + ", filter INPUT"
		}
	}
	return fmt.Sprintf("%s %s (%s, bridge %s)", port.Direction, pkt.Describe(), where, port.Bridge)
}

type sim struct {
	h       *Host
	rs      *Ruleset
	res     *Result
	pkt     *Packet
	port    *PortRef
	notrack bool
	ctSet   bool
	steps   int
	decided *Step
	// allowedBy is the path index of the last RETURN out of a port's i or
	// o chain: the rule that let the packet through, which sg-chain's
	// ACCEPT then only confirms. -1 if none.
	allowedBy int
}

type frame struct {
	chain *Chain
	cands []int32 // candidate positions for indexed chains, else nil
	next  int     // next position in cands (or in chain.Rules)
}

// traverse runs a built-in chain and returns the verdict: ACCEPT, DROP,
// REJECT or unknown. s.decided is the step that decided it.
func (s *sim) traverse(t *Table, builtin string) string {
	base := t.Chain(builtin)
	if base == nil {
		s.res.Notes = append(s.res.Notes, fmt.Sprintf("table %s has no chain %s: nothing to traverse", t.Name, builtin))
		s.decided = nil
		return VerdictAccept
	}
	stack := []frame{s.enter(base)}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		pos, skipped, ok := s.nextRule(top)
		if !ok {
			// End of the chain: a user chain returns, a built-in chain's
			// policy decides.
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return s.policy(base, skipped)
			}
			continue
		}
		s.steps++
		if s.steps > maxSteps {
			s.res.Unknown = append(s.res.Unknown, "the trace took more than 100,000 steps (a rule loop?)")
			return VerdictUnknown
		}
		r := top.chain.Rules[pos]
		step := s.evalRule(r, skipped)
		s.res.Path = append(s.res.Path, step)
		st := &s.res.Path[len(s.res.Path)-1]
		cr := r.compile()
		if step.Result == No {
			continue
		}
		if step.Result == Unknown {
			// A rule whose outcome is unknown and whose target could
			// change the packet's fate stops the trace.
			switch cr.target.kind {
			case targetNone, targetContinue:
				st.Action = "unknown whether it matched; its target does not decide"
				continue
			}
			st.Action = "unknown whether it matched (" + cr.target.text + ")"
			s.res.Unknown = append(s.res.Unknown, fmt.Sprintf("%s %s #%d: %s", t.Name, r.Chain.Name, r.Num, unknownReasons(st)))
			s.decided = st
			return VerdictUnknown
		}
		st.Origin = s.classify(r)
		switch tg := cr.target; tg.kind {
		case targetNone:
			st.Action = "no target: counted, on to the next rule"
		case targetAccept, targetDrop, targetReject:
			st.Action = tg.name
			s.decided = st
			return tg.name
		case targetReturn:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				st.Action = "RETURN from a built-in chain: the policy decides"
				return s.policy(base, 0)
			}
			st.Action = "RETURN to " + stack[len(stack)-1].chain.Name
			if k, _, _ := hybrid.PortChainOf(r.Chain.Name); k == hybrid.ChainIn || k == hybrid.ChainOut {
				s.allowedBy = len(s.res.Path) - 1
			}
		case targetJump:
			if len(stack) >= maxDepth {
				s.res.Unknown = append(s.res.Unknown, "jumps nested deeper than 1024 chains (a loop?)")
				s.decided = st
				return VerdictUnknown
			}
			st.Action = "jump to " + tg.name
			stack = append(stack, s.enter(t.Chain(tg.name)))
		case targetGoto:
			st.Action = "goto " + tg.name
			stack[len(stack)-1] = s.enter(t.Chain(tg.name))
		case targetCT:
			st.Action = s.ct(tg)
		case targetContinue:
			st.Action = tg.name + ": on to the next rule (" + tg.note + ")"
		default:
			st.Action = "unknown target"
			s.res.Unknown = append(s.res.Unknown, fmt.Sprintf("%s %s #%d: %s", t.Name, r.Chain.Name, r.Num, tg.unknown))
			s.decided = st
			return VerdictUnknown
		}
	}
	return s.policy(base, 0) // not reached: the loop returns when the stack empties
}

func unknownReasons(st *Step) string {
	var rs []string
	for _, m := range st.Matches {
		if m.Result == Unknown {
			rs = append(rs, m.Match+": "+m.Note)
		}
	}
	return strings.Join(rs, "; ")
}

func (s *sim) enter(c *Chain) frame {
	f := frame{chain: c}
	if len(c.Rules) >= indexThreshold {
		f.cands = c.candidates(s.pkt)
	}
	return f
}

// nextRule returns the next rule position of the frame to evaluate and
// how many rules were skipped before it (indexed chains only).
func (s *sim) nextRule(f *frame) (pos int, skipped int, ok bool) {
	if f.cands == nil {
		if f.next >= len(f.chain.Rules) {
			return 0, 0, false
		}
		f.next++
		return f.next - 1, 0, true
	}
	prev := -1
	if f.next > 0 {
		prev = int(f.cands[f.next-1])
	}
	if f.next >= len(f.cands) {
		return 0, len(f.chain.Rules) - prev - 1, false
	}
	pos = int(f.cands[f.next])
	f.next++
	return pos, pos - prev - 1, true
}

func (s *sim) evalRule(r *Rule, skipped int) Step {
	cr := r.compile()
	st := Step{Table: r.Chain.Table.Name, Chain: r.Chain.Name, RuleNumber: r.Num, Rule: r.Text, Result: Yes, Skipped: skipped, rule: r}
	st.Matches = make([]MatchOutcome, 0, len(cr.items))
	for i := range cr.items {
		it := &cr.items[i]
		o, note := it.eval(s.pkt, s.h.Sets)
		st.Matches = append(st.Matches, MatchOutcome{Match: it.text, Result: o, Note: note})
		st.Result = and(st.Result, o)
	}
	return st
}

func (s *sim) policy(c *Chain, skipped int) string {
	st := Step{Table: c.Table.Name, Chain: c.Name, Rule: "policy " + c.Policy, Result: Yes, Action: c.Policy, Skipped: skipped}
	st.Origin = &Origin{Kind: OriginPolicy, Text: "the policy of built-in chain " + c.Name + " (no rule decided)"}
	s.res.Path = append(s.res.Path, st)
	s.decided = &s.res.Path[len(s.res.Path)-1]
	return c.Policy
}

// ct applies a CT target. Only the first one counts: the kernel's CT
// target leaves a packet that already has a conntrack template alone.
func (s *sim) ct(tg target) string {
	if s.ctSet {
		return tg.text[3:] + ": no effect, the packet already has its conntrack template"
	}
	s.ctSet = true
	if tg.notrack {
		s.notrack = true
		return "CT --notrack: the packet will not be tracked (state UNTRACKED)"
	}
	s.res.Zone = tg.zone
	msg := "CT --zone " + strconv.Itoa(tg.zone) + ": conntrack zone " + strconv.Itoa(tg.zone)
	if tg.note != "" {
		msg += " (" + tg.note + ")"
	}
	return msg
}

// finish records the verdict and the deciding rule.
func (s *sim) finish(v string) {
	res := s.res
	res.Verdict = v
	if res.State == "" {
		res.State = s.pkt.State.String()
	}
	d := s.decided
	if d == nil {
		return
	}
	o := d.Origin
	if o == nil {
		if d.rule != nil {
			o = s.classify(d.rule)
		} else {
			o = &Origin{Kind: OriginOther}
		}
	}
	if v == VerdictAccept && o.Kind == OriginSGChainAccept && s.allowedBy >= 0 {
		// Report the rule that let the packet out of the port's chain.
		d = &res.Path[s.allowedBy]
		o = d.Origin
		res.Notes = append(res.Notes, "the port's chain returned the packet to sg-chain, whose last rule accepts it")
	}
	res.DecidedBy = &Decision{Table: d.Table, Chain: d.Chain, RuleNumber: d.RuleNumber, Rule: d.Rule,
		Origin: o.Text, OriginKind: o.Kind, Rules: o.Rules}
	if v == VerdictDrop && o.Kind == OriginDefaultDrop {
		res.Rule, res.Suggestion, res.Notes = suggest(s, res.Notes)
	}
	res.Notes = append(res.Notes, s.ipipNotes()...)
	if s.port.Hook == HookInput && s.bridgedMissed() {
		res.Notes = append(res.Notes, "at INPUT the frame is not being bridged, so rules with --physdev-is-bridged (Neutron's dispatch to the port's o chain) do not match: the port's security groups do not filter this traffic to the host itself")
	}
	res.Packet = describePort(s.pkt, s.port)
}

// bridgedMissed reports whether a rule of the path failed only for lack of
// a bridge out-port.
func (s *sim) bridgedMissed() bool {
	for _, st := range s.res.Path {
		if st.Result != No {
			continue
		}
		bridged, other := false, false
		for _, m := range st.Matches {
			if m.Result != No {
				continue
			}
			if m.Match == "--physdev-is-bridged" {
				bridged = true
			} else {
				other = true
			}
		}
		if bridged && !other {
			return true
		}
	}
	return false
}

// ipipNotes points out -p ipip rules an IP-in-IP packet met: the bug of
// mission.md, where Neutron renders the API name ipip as protocol 94.
func (s *sim) ipipNotes() []string {
	if s.pkt.Protocol != 4 {
		return nil
	}
	var notes []string
	for _, st := range s.res.Path {
		for _, m := range st.Matches {
			if m.Match == "-p ipip" {
				notes = append(notes, fmt.Sprintf("%s #%d (-p ipip) is protocol 94, not IP-in-IP (4): Neutron renders the API protocol name ipip that way; moat renders it as -p ipencap (4). A rule with --protocol 4 matches IP-in-IP on both.", st.Chain, st.RuleNumber))
			}
		}
	}
	return notes
}
