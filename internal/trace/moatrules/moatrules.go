// Package moatrules gives moat trace the rules moat itself would install
// for a host state, with their provenance: which security group rule
// produced which line of a port's chains (the origins the compiler gives
// every rule), and which groups each port carries. It joins the firewall
// compiler and the trace simulator, which know nothing of each other.
package moatrules

import (
	"bytes"
	"fmt"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/trace"
)

// Host compiles st and loads the result for tracing. The rules go through
// firewall.WriteSave and trace.ParseSave, the same text a host's
// iptables-save would print, so that a trace of a spec and a trace of the
// host that runs it walk the same rules.
func Host(st *firewall.HostState) (*trace.Host, error) {
	rs, err := firewall.Compile(st)
	if err == nil {
		// A trace of a host without some of its ports would mislead.
		err = rs.RejectedError()
	}
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	h := &trace.Host{}
	for _, fam := range []struct {
		v6 bool
		t  *firewall.Tables
		rs **trace.Ruleset
	}{{false, &rs.IPv4, &h.IPv4}, {true, &rs.IPv6, &h.IPv6}} {
		var b bytes.Buffer
		if err := firewall.WriteSave(&b, &fam.t.Raw, &fam.t.Filter); err != nil {
			return nil, err
		}
		if *fam.rs, err = trace.ParseSaveString(b.String(), fam.v6); err != nil {
			return nil, fmt.Errorf("read back the compiled rules: %w", err)
		}
	}
	var b bytes.Buffer
	if err := firewall.WriteIPSetSave(&b, rs.IPSets); err != nil {
		return nil, err
	}
	if h.Sets, err = trace.ParseIPSets(&b); err != nil {
		return nil, fmt.Errorf("read back the compiled ipsets: %w", err)
	}
	p, ids := groups(st, nil)
	addSources(p, rs.RuleSources(ids...))
	h.Provenance = p
	return h, nil
}

// Provenance maps the rules of every port of st to their security group
// rules (firewall.RuleSources) and lists each port's groups.
func Provenance(st *firewall.HostState) (*trace.Provenance, error) {
	return provenance(st, nil)
}

// PortProvenance is Provenance for the ports of st with the given ids
// only; an id st does not hold adds nothing.
func PortProvenance(st *firewall.HostState, portIDs ...string) (*trace.Provenance, error) {
	want := make(map[string]bool, len(portIDs))
	for _, id := range portIDs {
		want[id] = true
	}
	return provenance(st, want)
}

// DumpProvenance is the provenance of rules as h holds them: Provenance,
// or with ids PortProvenance, of st compiled with the options h's rules
// were compiled with (trace.Host.Rendering), whatever st's options say.
// The rules of an agent run with --no-ipset or --no-comments are rendered
// otherwise than with the defaults, and would map to nothing.
func DumpProvenance(h *trace.Host, st *firewall.HostState, portIDs ...string) (*trace.Provenance, error) {
	s := *st
	r := h.Rendering()
	s.Options.EnableIPSet, s.Options.CommentRules = r.IPSets, r.Comments
	if len(portIDs) == 0 {
		return Provenance(&s)
	}
	return PortProvenance(&s, portIDs...)
}

// provenance is Provenance for the ports in want, or all if want is nil.
func provenance(st *firewall.HostState, want map[string]bool) (*trace.Provenance, error) {
	p, ids := groups(st, want)
	if len(ids) == 0 {
		return p, nil
	}
	src, err := firewall.RuleSources(st, ids...)
	if err != nil {
		return nil, err
	}
	addSources(p, src)
	return p, nil
}

// groups starts the provenance of the ports of st in want (all if nil)
// with their groups, and lists their ids.
func groups(st *firewall.HostState, want map[string]bool) (*trace.Provenance, []string) {
	p := &trace.Provenance{Rules: map[trace.RuleKey][]trace.SGRule{}, Groups: map[string][]string{}, Sets: sets(st)}
	var ids []string
	for _, port := range st.Ports {
		if want != nil && !want[port.ID] {
			continue
		}
		p.Groups[port.ID] = append([]string(nil), port.SecurityGroups...)
		ids = append(ids, port.ID)
	}
	return p, ids
}

// sets names the ipsets of st's remote groups and address groups.
func sets(st *firewall.HostState) map[string]trace.SetSource {
	out := map[string]trace.SetSource{}
	for id := range st.GroupMembers {
		for _, eth := range []string{hybrid.IPv4, hybrid.IPv6} {
			out[hybrid.IPSetName(eth, id)] = trace.SetSource{ID: id}
		}
	}
	for _, ag := range st.AddressGroups {
		for _, eth := range []string{hybrid.IPv4, hybrid.IPv6} {
			out[hybrid.IPSetName(eth, ag.ID)] = trace.SetSource{AddressGroup: true, ID: ag.ID, Name: ag.Name}
		}
	}
	return out
}

func addSources(p *trace.Provenance, src map[firewall.LineKey][]firewall.RuleSource) {
	for k, rules := range src {
		key := trace.RuleKey{IPv6: k.IPv6, Chain: k.Chain, Rule: k.Rule}
		for _, r := range rules {
			p.Rules[key] = appendUnique(p.Rules[key], r)
		}
	}
}

func appendUnique(rs []trace.SGRule, r trace.SGRule) []trace.SGRule {
	for _, x := range rs {
		if x == r {
			return rs
		}
	}
	return append(rs, r)
}
