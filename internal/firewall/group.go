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
	egress      bool        // the address is the destination
	rule        hybrid.Rule // the rule without the address
	key         string      // the rule's identity after the address, "" for its text
}

// renderedGroup is a security group's rules rendered per family and
// direction. It depends only on the group and on the options, never on the
// port that carries the group.
type renderedGroup struct {
	lines     [2][2][]gline
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
		gl, err := renderRule(r, hybrid.SGRuleRef{GroupID: g.ID, RuleID: r.ID, Index: i}, opt)
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
// rule, before any per-port expansion; ref names the rule in its origin.
func renderRule(r *Rule, ref hybrid.SGRuleRef, opt Options) (gline, error) {
	var fam6 bool
	switch r.Ethertype {
	case IPv4:
	case IPv6:
		fam6 = true
	default:
		return gline{}, fmt.Errorf("bad ethertype %s", quoteShort(r.Ethertype))
	}
	egress := false
	switch r.Direction {
	case Ingress:
	case Egress:
		egress = true
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
	remoteAG := r.RemoteAddressGroupID
	if opt.NeutronCompat {
		// Neutron 21's iptables driver ignores the address group: the rule
		// is rendered without any remote, i.e. open to every address.
		remoteAG = ""
	}
	spec := &hybrid.Rule{
		Action: hybrid.Action{Kind: hybrid.Return},
		Origin: &hybrid.Origin{Kind: hybrid.OriginSGRule, Direction: r.Direction, Ethertype: r.Ethertype,
			Rules: []hybrid.SGRuleRef{ref}, RemoteGroup: r.RemoteGroupID, RemoteAddressGroup: remoteAG},
	}
	// mkey is Neutron's spelling of the protocol part where it differs.
	mkey := protoMatch(&spec.Match, r, p)
	remote := r.RemoteGroupID
	if remote == "" {
		remote = remoteAG
	}
	switch {
	case remote != "" && opt.EnableIPSet:
		spec.Match.IPSet, spec.Match.IPSetDst = hybrid.IPSetName(r.Ethertype, remote), egress
		return gline{line: sgLine(spec, "", mkey)}, nil
	case remote != "":
		x := &expansion{remoteGroup: r.RemoteGroupID != "", id: remote, egress: egress, rule: *spec}
		if mkey != "" {
			x.key = sgKey("", mkey, "")
		}
		return gline{exp: x}, nil
	}
	pfx, err := rulePrefix(r, fam6)
	if err != nil {
		return gline{}, err
	}
	pre := ""
	if pfx.Bits() > 0 {
		pre = prefixArg(egress, pfx)
		if egress {
			spec.Match.Dst = pfx
		} else {
			spec.Match.Src = pfx
		}
	}
	return gline{line: sgLine(spec, pre, mkey)}, nil
}

// sgLine renders a group rule; when Neutron spells its protocol part
// otherwise (mkey), its identity is that spelling with the rule's address
// part pre before it.
func sgLine(spec *hybrid.Rule, pre, mkey string) line {
	l := newLine(spec)
	if mkey != "" {
		set := ""
		if m := spec.Match; m.IPSet != "" {
			set = "-m set --match-set " + m.IPSet + " src"
			if m.IPSetDst {
				set = "-m set --match-set " + m.IPSet + " dst"
			}
		}
		l.key = sgKey(pre, mkey, set)
	}
	return l
}

// sgKey joins the parts of a group rule's identity.
func sgKey(pre, mkey, set string) string {
	var parts []string
	for _, p := range []string{pre, mkey, set, "-j RETURN"} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// rulePrefix is a rule's remote prefix: Neutron uses normalized_cidr (host
// bits cleared) and drops a /0, which matches everything anyway; the zero
// Prefix for none.
func rulePrefix(r *Rule, fam6 bool) (netip.Prefix, error) {
	cidr := r.NormalizedCIDR
	if cidr == "" {
		cidr = r.RemoteIPPrefix
	}
	if cidr == "" {
		return netip.Prefix{}, nil
	}
	p, err := neutron.ParseCIDR(cidr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad remote_ip_prefix %s", quoteShort(cidr))
	}
	if p.Addr().Is6() != fam6 {
		return netip.Prefix{}, fmt.Errorf("remote_ip_prefix %s does not match the rule's ethertype", cidr)
	}
	return p.Masked(), nil
}

// prefixArg is -s (or for egress -d) for a prefix as iptables-save prints
// it: host bits cleared; "" for a /0, which it does not print.
func prefixArg(egress bool, p netip.Prefix) string {
	if p.Bits() == 0 {
		return ""
	}
	if egress {
		return "-d " + p.Masked().String()
	}
	return "-s " + p.Masked().String()
}
