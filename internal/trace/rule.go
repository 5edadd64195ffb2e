package trace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
)

// A compiled rule is its matches, split into items (one per option, so
// that the trace can show each one's outcome), and its target.

type itemKind uint8

const (
	itemUnknown itemKind = iota
	itemSrc
	itemDst
	itemInIface
	itemOutIface
	itemProto
	itemFragment
	itemPhysIn
	itemPhysOut
	itemPhysBridged
	itemPhysIsIn
	itemPhysIsOut
	itemSport
	itemDport
	itemMultiport
	itemICMP
	itemICMPv6
	itemState
	itemMAC
	itemSet
)

type portRange struct{ lo, hi int }

// item is one condition of a rule.
type item struct {
	kind itemKind
	text string // as in the rule, with its "!"
	neg  bool

	pfx      netip.Prefix
	name     string // interface, set or module name
	wildcard bool   // interface name ends in "+"
	num      int    // protocol
	proto    int    // the protocol a port match belongs to (0: any of multiport's)
	ranges   []portRange
	which    byte // multiport: 's', 'd' or 'b' (either)
	icmpType int  // -1: any
	icmpLo   int
	icmpHi   int
	states   State
	mac      net.HardwareAddr
	setDirs  []byte // 's' or 'd' per set dimension

	unknown string // why the item is not understood
}

type targetKind uint8

const (
	targetNone     targetKind = iota // no -j: counts and goes on
	targetAccept                     // ACCEPT
	targetDrop                       // DROP
	targetReject                     // REJECT
	targetReturn                     // RETURN
	targetJump                       // -j user chain
	targetGoto                       // -g user chain
	targetCT                         // CT --zone / --notrack
	targetContinue                   // LOG, NFLOG, MARK...: no verdict
	targetUnknown                    // a target the simulator does not model
)

type target struct {
	kind    targetKind
	text    string // "-j CT --zone 4097"
	name    string // target or chain name
	zone    int
	notrack bool
	note    string // for targetContinue and targetCT options not modelled
	unknown string
}

// compiledRule is a rule ready for matching.
type compiledRule struct {
	items   []item
	comment string
	target  target
}

// continueTargets change no verdict; what they do besides (log, mark) is
// not modelled and does not matter to the verdict unless a later rule
// matches on it, which would then be an unknown match.
var continueTargets = map[string]bool{
	"LOG": true, "NFLOG": true, "ULOG": true, "MARK": true, "CONNMARK": true,
	"TRACE": true, "AUDIT": true, "CLASSIFY": true, "DSCP": true, "TOS": true,
	"CHECKSUM": true, "TCPMSS": true, "CONNSECMARK": true, "SECMARK": true,
	"IDLETIMER": true, "LED": true, "RATEEST": true,
}

// compile parses r's text on first use.
func (r *Rule) compile() *compiledRule {
	if r.compiled == nil {
		r.compiled = compileRule(r.Text, r.Chain.Table)
	}
	return r.compiled
}

// compileRule parses one rule. It never fails: what it cannot read
// becomes an unknown item (or target), so that a trace that reaches it
// says so instead of guessing.
func compileRule(text string, t *Table) *compiledRule {
	cr := &compiledRule{}
	args, err := hybrid.SplitArgs(text)
	if err != nil {
		err = fmt.Errorf("%w in %q", err, clip(text))
		cr.items = append(cr.items, item{text: text, unknown: err.Error()})
		cr.target = target{kind: targetUnknown, text: "?", unknown: err.Error()}
		return cr
	}
	module := ""
	for i := 0; i < len(args); {
		neg := false
		if args[i] == "!" {
			neg = true
			i++
			if i == len(args) {
				cr.items = append(cr.items, item{text: "!", unknown: "\"!\" at the end of the rule"})
				break
			}
		}
		opt := args[i]
		// val returns the option's argument.
		val := func() (string, bool) {
			if i+1 >= len(args) {
				return "", false
			}
			return args[i+1], true
		}
		prefix := ""
		if neg {
			prefix = "! "
		}
		switch opt {
		case "-j", "--jump", "-g", "--goto":
			v, ok := val()
			if !ok {
				cr.target = target{kind: targetUnknown, text: opt, unknown: opt + " without a target"}
				return cr
			}
			if neg {
				cr.items = append(cr.items, item{text: "! " + opt, unknown: "a negated target"})
			}
			cr.target = parseTarget(opt, v, args[i+2:], t)
			return cr
		case "-m", "--match":
			v, ok := val()
			if !ok {
				cr.items = append(cr.items, item{text: opt, unknown: "-m without a module"})
				return cr
			}
			module = v
			i += 2
			if !knownModule[module] {
				// Collect the module's options into one unknown item.
				j := i
				for j < len(args) && !isGeneric(args, j) {
					j++
				}
				txt := strings.TrimSpace("-m " + module + " " + strings.Join(args[i:j], " "))
				cr.items = append(cr.items, item{text: txt, unknown: "match module " + module + " is not modelled"})
				i = j
			}
			continue
		case "-c", "--set-counters":
			i += 3
			continue
		case "-f", "--fragment":
			cr.items = append(cr.items, item{kind: itemFragment, neg: neg, text: prefix + "-f"})
			i++
			continue
		}
		v, hasVal := val()
		it := item{neg: neg, text: prefix + opt}
		if hasVal {
			it.text += " " + hybrid.QuoteArg(v)
		}
		n := 2 // tokens consumed
		switch opt {
		case "-s", "--source", "--src", "-d", "--destination", "--dst":
			it.kind = itemSrc
			if opt[1] == 'd' || opt == "--dst" {
				it.kind = itemDst
			}
			it.pfx, err = parseRulePrefix(v)
			if err != nil || !hasVal {
				it.unknown = fmt.Sprintf("bad address %q", v)
			}
		case "-i", "--in-interface", "-o", "--out-interface":
			it.kind = itemInIface
			if opt == "-o" || opt == "--out-interface" {
				it.kind = itemOutIface
			}
			it.name, it.wildcard = strings.CutSuffix(v, "+")
		case "-p", "--protocol":
			it.kind = itemProto
			num, ok := hybrid.ParseIptablesProtocol(v)
			if !ok || !hasVal {
				it.unknown = fmt.Sprintf("protocol %q is unknown to iptables", v)
			}
			it.num = num
		case "--comment":
			if module == "comment" {
				cr.comment = v
				i += 2
				continue
			}
			it.unknown = "--comment outside -m comment"
		default:
			if !strings.HasPrefix(opt, "--") {
				it.unknown = "unexpected argument " + hybrid.QuoteArg(opt)
				n = 1
				it.text = prefix + opt
				break
			}
			n = moduleOption(&it, module, opt, args[i+1:])
		}
		cr.items = append(cr.items, it)
		i += n
	}
	return cr
}

// isGeneric reports whether args[j] starts a new option that is not a
// module's own ("-m", "-j", ...), or a "!" before one.
func isGeneric(args []string, j int) bool {
	a := args[j]
	if a == "!" && j+1 < len(args) {
		a = args[j+1]
	}
	return len(a) == 2 && a[0] == '-' && a[1] != '-'
}

var knownModule = map[string]bool{
	"physdev": true, "tcp": true, "udp": true, "sctp": true, "dccp": true,
	"multiport": true, "icmp": true, "icmp6": true, "icmpv6": true, "state": true,
	"conntrack": true, "mac": true, "set": true, "comment": true,
}

// moduleProtocol is the protocol of a port-matching module.
var moduleProtocol = map[string]int{"tcp": 6, "udp": 17, "sctp": 132, "dccp": 33}

// moduleOption reads one option of a known module into it and returns how
// many arguments it took (the option included).
func moduleOption(it *item, module, opt string, rest []string) int {
	arg := func(k int) string {
		if k < len(rest) {
			return rest[k]
		}
		return ""
	}
	v := arg(0)
	unknownOpt := func() int {
		// Take the option's arguments: everything up to the next option.
		k := 0
		for k < len(rest) && !strings.HasPrefix(rest[k], "-") && rest[k] != "!" {
			k++
		}
		if it.neg {
			it.text = "! " + opt
		} else {
			it.text = opt
		}
		if k > 0 {
			it.text += " " + strings.Join(rest[:k], " ")
		}
		if module == "" {
			it.unknown = "option " + opt + " outside a match module"
		} else {
			it.unknown = "option " + opt + " of -m " + module + " is not modelled"
		}
		return 1 + k
	}
	switch module {
	case "physdev":
		switch opt {
		case "--physdev-in", "--physdev-out":
			it.kind = itemPhysIn
			if opt == "--physdev-out" {
				it.kind = itemPhysOut
			}
			it.name, it.wildcard = strings.CutSuffix(v, "+")
			return 2
		case "--physdev-is-bridged", "--physdev-is-in", "--physdev-is-out":
			it.kind = map[string]itemKind{"--physdev-is-bridged": itemPhysBridged, "--physdev-is-in": itemPhysIsIn, "--physdev-is-out": itemPhysIsOut}[opt]
			// A flag: the caller's text took the next argument along.
			it.text = opt
			if it.neg {
				it.text = "! " + opt
			}
			return 1
		}
	case "tcp", "udp", "sctp", "dccp":
		switch opt {
		case "--sport", "--source-port", "--dport", "--destination-port":
			it.kind = itemSport
			if opt == "--dport" || opt == "--destination-port" {
				it.kind = itemDport
			}
			it.proto = moduleProtocol[module]
			r, err := parsePortRange(v)
			if err != nil {
				it.unknown = err.Error()
			}
			it.ranges = []portRange{r}
			return 2
		}
	case "multiport":
		which := map[string]byte{"--dports": 'd', "--destination-ports": 'd', "--sports": 's', "--source-ports": 's', "--ports": 'b'}[opt]
		if which != 0 {
			it.kind, it.which = itemMultiport, which
			for _, p := range strings.Split(v, ",") {
				r, err := parsePortRange(p)
				if err != nil {
					it.unknown = err.Error()
				}
				it.ranges = append(it.ranges, r)
			}
			return 2
		}
	case "icmp":
		if opt == "--icmp-type" {
			it.kind = itemICMP
			if err := parseICMPType(it, v, icmpNames); err != nil {
				it.unknown = err.Error()
			}
			return 2
		}
	case "icmp6", "icmpv6":
		if opt == "--icmpv6-type" {
			it.kind = itemICMPv6
			if err := parseICMPType(it, v, icmpv6Names); err != nil {
				it.unknown = err.Error()
			}
			return 2
		}
	case "state", "conntrack":
		if (module == "state" && opt == "--state") || (module == "conntrack" && opt == "--ctstate") {
			it.kind = itemState
			for _, s := range strings.Split(v, ",") {
				st, err := ParseState(s)
				if err != nil {
					// SNAT and DNAT are conntrack states moat does not model.
					it.unknown = fmt.Sprintf("state %s is not modelled", s)
					continue
				}
				it.states |= st
			}
			return 2
		}
	case "mac":
		if opt == "--mac-source" {
			it.kind = itemMAC
			m, err := net.ParseMAC(v)
			if err != nil {
				it.unknown = fmt.Sprintf("bad MAC %q", v)
			}
			it.mac = m
			return 2
		}
	case "set":
		if opt == "--match-set" {
			it.kind, it.name = itemSet, v
			flags := arg(1)
			it.text += " " + flags
			for _, f := range strings.Split(flags, ",") {
				switch f {
				case "src":
					it.setDirs = append(it.setDirs, 's')
				case "dst":
					it.setDirs = append(it.setDirs, 'd')
				default:
					it.unknown = fmt.Sprintf("set flag %q", f)
				}
			}
			if len(it.setDirs) == 0 {
				it.unknown = "--match-set without src/dst"
			}
			return 3
		}
	}
	return unknownOpt()
}

func parsePortRange(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	l, err1 := strconv.Atoi(lo)
	h := l
	var err2 error
	if isRange {
		if hi == "" {
			h = 65535
		} else {
			h, err2 = strconv.Atoi(hi)
		}
		if lo == "" {
			l, err1 = 0, nil
		}
	}
	if err1 != nil || err2 != nil || l < 0 || h > 65535 || l > h {
		return portRange{}, fmt.Errorf("bad port or range %q", s)
	}
	return portRange{l, h}, nil
}

// ICMP type names iptables accepts (a subset: iptables-save prints
// numbers, these are for hand-written rules).
var icmpNames = map[string][3]int{
	"any": {-1, 0, 255}, "echo-reply": {0, 0, 255}, "pong": {0, 0, 255},
	"destination-unreachable": {3, 0, 255}, "network-unreachable": {3, 0, 0},
	"host-unreachable": {3, 1, 1}, "protocol-unreachable": {3, 2, 2},
	"port-unreachable": {3, 3, 3}, "fragmentation-needed": {3, 4, 4},
	"source-quench": {4, 0, 255}, "redirect": {5, 0, 255},
	"echo-request": {8, 0, 255}, "ping": {8, 0, 255},
	"router-advertisement": {9, 0, 255}, "router-solicitation": {10, 0, 255},
	"time-exceeded": {11, 0, 255}, "ttl-exceeded": {11, 0, 255},
	"parameter-problem": {12, 0, 255}, "timestamp-request": {13, 0, 255},
	"timestamp-reply": {14, 0, 255},
}

var icmpv6Names = map[string][3]int{
	"destination-unreachable": {1, 0, 255}, "no-route": {1, 0, 0},
	"packet-too-big": {2, 0, 255}, "time-exceeded": {3, 0, 255},
	"ttl-exceeded": {3, 0, 255}, "parameter-problem": {4, 0, 255},
	"echo-request": {128, 0, 255}, "ping": {128, 0, 255},
	"echo-reply": {129, 0, 255}, "pong": {129, 0, 255},
	"router-solicitation": {133, 0, 255}, "router-advertisement": {134, 0, 255},
	"neighbour-solicitation": {135, 0, 255}, "neighbor-solicitation": {135, 0, 255},
	"neighbour-advertisement": {136, 0, 255}, "neighbor-advertisement": {136, 0, 255},
	"redirect": {137, 0, 255},
}

// parseICMPType reads "T", "T/C" or a name. IPv4 type 255 means any type
// (iptables-save prints it as "any").
func parseICMPType(it *item, s string, names map[string][3]int) error {
	if n, ok := names[strings.ToLower(s)]; ok {
		it.icmpType, it.icmpLo, it.icmpHi = n[0], n[1], n[2]
		return nil
	}
	t, c, hasCode := strings.Cut(s, "/")
	tn, err := strconv.Atoi(t)
	if err != nil || tn < 0 || tn > 255 {
		return fmt.Errorf("ICMP type %q is not modelled", s)
	}
	it.icmpType, it.icmpLo, it.icmpHi = tn, 0, 255
	if it.kind == itemICMP && tn == 255 {
		it.icmpType = -1
	}
	if hasCode {
		cn, err := strconv.Atoi(c)
		if err != nil || cn < 0 || cn > 255 {
			return fmt.Errorf("ICMP code %q", c)
		}
		it.icmpLo, it.icmpHi = cn, cn
	}
	return nil
}

// parseRulePrefix reads -s/-d: an address, a prefix, or an address with a
// dotted netmask (iptables-save prints one for a non-contiguous mask).
func parseRulePrefix(s string) (netip.Prefix, error) {
	addr, mask, hasMask := strings.Cut(s, "/")
	if hasMask && strings.ContainsAny(mask, ".:") {
		m, err := netip.ParseAddr(mask)
		if err != nil {
			return netip.Prefix{}, err
		}
		ones, bits := net.IPMask(m.AsSlice()).Size()
		if bits == 0 {
			return netip.Prefix{}, errors.New("non-contiguous netmask")
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, ones).Masked(), nil
	}
	return parseNet(s)
}

func parseTarget(opt, name string, rest []string, t *Table) target {
	tg := target{name: name, text: strings.TrimSpace(opt + " " + name + " " + strings.Join(quoteArgs(rest), " "))}
	if opt == "-g" || opt == "--goto" {
		if t.Chain(name) == nil || t.Chain(name).Builtin() {
			return target{kind: targetUnknown, name: name, text: tg.text, unknown: "goto to " + name + ", which is not a user chain of table " + t.Name}
		}
		tg.kind = targetGoto
		return tg
	}
	switch name {
	case "ACCEPT":
		tg.kind = targetAccept
	case "DROP":
		tg.kind = targetDrop
	case "REJECT":
		tg.kind = targetReject
	case "RETURN":
		tg.kind = targetReturn
	case "CT":
		tg.kind = targetCT
		for i := 0; i < len(rest); i++ {
			switch rest[i] {
			case "--notrack":
				tg.notrack = true
			case "--zone":
				if i+1 < len(rest) {
					z, err := strconv.Atoi(rest[i+1])
					if err != nil {
						tg.note = "zone " + rest[i+1] + " is not modelled"
					}
					tg.zone = z
					i++
				}
			default:
				tg.note = "CT option " + rest[i] + " is not modelled"
			}
		}
	case "NOTRACK":
		tg.kind, tg.notrack = targetCT, true
	default:
		switch {
		case continueTargets[name]:
			tg.kind = targetContinue
			tg.note = name + " does not decide the packet's fate"
		case t.Chain(name) != nil && !t.Chain(name).Builtin():
			tg.kind = targetJump
		default:
			tg.kind = targetUnknown
			tg.unknown = "target " + name + " is not modelled"
		}
	}
	return tg
}

func quoteArgs(as []string) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = hybrid.QuoteArg(a)
	}
	return out
}
