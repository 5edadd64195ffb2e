package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/neutron"
)

// Family and direction indexes of per-port rule lists.
const (
	v4 = 0
	v6 = 1

	in  = 0 // ingress: the port's i chain
	out = 1 // egress: the port's o chain
)

// line is one rule of a chain: the text iptables-save prints and, when it
// differs, the text Neutron would have written, which is what decides
// whether two rules are duplicates (Neutron de-duplicates what it writes,
// the kernel shows what it stored).
type line struct {
	text string
	key  string // "" means text
}

func (l line) id() string {
	if l.key != "" {
		return l.key
	}
	return l.text
}

// gline is a rendered security group rule: either a literal line, or a
// template expanded into one line per remote address when ipsets are off.
type gline struct {
	line
	exp *expansion
}

// expansion is a rule that is repeated for each address of a remote group
// (members, own fixed addresses excluded) or of an address group.
type expansion struct {
	remoteGroup bool
	id          string
	flag        string // "-s" for ingress, "-d" for egress
	rest        line   // protocol/port part and jump, after the prefix
}

// renderedGroup is a security group's rules rendered per family and
// direction. It depends only on the group and on the options, never on the
// port that carries the group.
type renderedGroup struct {
	lines [2][2][]gline
	// index holds, for each line, the position of its rule in the
	// group's Rules (for RuleSources).
	index     [2][2][]int
	stateless bool
	// probe is how Neutron decides whether a port whose first group this
	// is gets a conntrack zone or --notrack: it looks for the group's first
	// rule that applies to the port; without ipsets a remote-group rule
	// whose members are only the port itself does not count. probe lists
	// the rules' remote groups up to and including the first rule without
	// one (id ""), after which the search always stops.
	probe []remoteRef
	// remotes are the remote groups and address groups the group's rules
	// name, which decide the ipsets (or, without ipsets, the expansions).
	remoteGroups  []remoteRef
	addressGroups []remoteRef
}

// remoteRef is a remote group or address group named by a rule, with the
// ethertype of that rule.
type remoteRef struct {
	id string
	v6 bool
}

func renderGroup(g *SecurityGroup, opt Options) (*renderedGroup, error) {
	if err := checkID(g.ID); err != nil {
		return nil, fmt.Errorf("bad security group id: %w", err)
	}
	rg := &renderedGroup{stateless: g.Stateless}
	for i := range g.Rules {
		r := &g.Rules[i]
		if n := len(rg.probe); n == 0 || rg.probe[n-1].id != "" {
			rg.probe = append(rg.probe, remoteRef{r.RemoteGroupID, r.Ethertype == IPv6})
		}
		gl, err := renderRule(r, opt)
		if err != nil {
			which := strconv.Itoa(i)
			if r.ID != "" {
				which = quoteShort(r.ID)
			}
			return nil, fmt.Errorf("security group %s rule %s: %w", g.ID, which, err)
		}
		fam, dir := v4, in
		if r.Ethertype == IPv6 {
			fam = v6
		}
		if r.Direction == Egress {
			dir = out
		}
		rg.lines[fam][dir] = append(rg.lines[fam][dir], gl)
		rg.index[fam][dir] = append(rg.index[fam][dir], i)
		switch {
		case r.RemoteGroupID != "":
			rg.remoteGroups = appendRef(rg.remoteGroups, remoteRef{r.RemoteGroupID, fam == v6})
		case r.RemoteAddressGroupID != "":
			rg.addressGroups = appendRef(rg.addressGroups, remoteRef{r.RemoteAddressGroupID, fam == v6})
		}
	}
	return rg, nil
}

func appendRef(refs []remoteRef, r remoteRef) []remoteRef {
	for _, x := range refs {
		if x == r {
			return refs
		}
	}
	return append(refs, r)
}

// renderRule is Neutron's _convert_sg_rule_to_iptables_args for one stored
// rule, before any per-port expansion.
func renderRule(r *Rule, opt Options) (gline, error) {
	var fam6 bool
	switch r.Ethertype {
	case IPv4:
	case IPv6:
		fam6 = true
	default:
		return gline{}, fmt.Errorf("bad ethertype %s", quoteShort(r.Ethertype))
	}
	flag, setDir := "-s", "src"
	switch r.Direction {
	case Ingress:
	case Egress:
		flag, setDir = "-d", "dst"
	default:
		return gline{}, fmt.Errorf("bad direction %s", quoteShort(r.Direction))
	}
	// Remote ids become set names.
	if r.RemoteGroupID != "" {
		if err := checkID(r.RemoteGroupID); err != nil {
			return gline{}, fmt.Errorf("bad remote_group_id: %w", err)
		}
	}
	if r.RemoteAddressGroupID != "" {
		if err := checkID(r.RemoteAddressGroupID); err != nil {
			return gline{}, fmt.Errorf("bad remote_address_group_id: %w", err)
		}
	}
	p, err := resolveProtocol(r.Protocol, fam6, opt.NeutronCompat)
	if err != nil {
		return gline{}, err
	}
	if err := checkPortRange(r, p, opt.NeutronCompat); err != nil {
		return gline{}, err
	}
	msave, mkey := matchArgs(r, p)
	mid := line{text: msave, key: mkey}

	remoteAG := r.RemoteAddressGroupID
	if opt.NeutronCompat {
		// Neutron 21's iptables driver ignores the address group: the rule
		// is rendered without any remote, i.e. open to every address.
		remoteAG = ""
	}
	switch {
	case r.RemoteGroupID != "" && opt.EnableIPSet:
		return gline{line: join(mid, setMatch(r.Ethertype, r.RemoteGroupID, setDir), jumpReturn)}, nil
	case r.RemoteGroupID != "":
		return gline{exp: &expansion{remoteGroup: true, id: r.RemoteGroupID, flag: flag, rest: join(mid, jumpReturn)}}, nil
	case remoteAG != "" && opt.EnableIPSet:
		return gline{line: join(mid, setMatch(r.Ethertype, remoteAG, setDir), jumpReturn)}, nil
	case remoteAG != "":
		return gline{exp: &expansion{id: remoteAG, flag: flag, rest: join(mid, jumpReturn)}}, nil
	}
	pre, err := rulePrefix(r, fam6, flag)
	if err != nil {
		return gline{}, err
	}
	return gline{line: join(pre, mid, jumpReturn)}, nil
}

var jumpReturn = line{text: "-j RETURN"}

func setMatch(ethertype, id, dir string) line {
	return line{text: "-m set --match-set " + hybrid.IPSetName(ethertype, id) + " " + dir}
}

// rulePrefix is the -s/-d argument of a rule's remote prefix: Neutron uses
// normalized_cidr (host bits cleared) and drops a /0, which matches
// everything anyway.
func rulePrefix(r *Rule, fam6 bool, flag string) (line, error) {
	cidr := r.NormalizedCIDR
	if cidr == "" {
		cidr = r.RemoteIPPrefix
	}
	if cidr == "" {
		return line{}, nil
	}
	p, err := neutron.ParseCIDR(cidr)
	if err != nil {
		return line{}, fmt.Errorf("bad remote_ip_prefix %s", quoteShort(cidr))
	}
	if p.Addr().Is6() != fam6 {
		return line{}, fmt.Errorf("remote_ip_prefix %s does not match the rule's ethertype", cidr)
	}
	return prefixArg(flag, p), nil
}

// prefixArg renders -s/-d for a prefix as iptables-save prints it: host bits
// cleared, "/0" not at all.
func prefixArg(flag string, p netip.Prefix) line {
	if p.Bits() == 0 {
		return line{}
	}
	return line{text: flag + " " + p.Masked().String()}
}

// join concatenates non-empty parts with spaces, keeping the key text
// alongside when any part has one.
func join(parts ...line) line {
	var text, key strings.Builder
	hasKey := false
	for _, p := range parts {
		if p.key != "" {
			hasKey = true
		}
	}
	for _, p := range parts {
		if p.text != "" {
			if text.Len() > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(p.text)
		}
		if hasKey && p.id() != "" {
			if key.Len() > 0 {
				key.WriteByte(' ')
			}
			key.WriteString(p.id())
		}
	}
	l := line{text: text.String()}
	if hasKey && key.String() != l.text {
		l.key = key.String()
	}
	return l
}
