package agent

import (
	"context"
	"errors"
	"time"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/hybrid"
)

// CounterReader is Rules that can read the hit counters of ports' own
// chains (the iptables backends).
type CounterReader interface {
	// PortCounters returns, per port, the rules of its i, o and s chains
	// in both families with their counters; a port none of whose chains
	// exist is in missing instead.
	PortCounters(ctx context.Context, ports []string) (rules map[string][]hostview.RuleCounter, missing []string, err error)
}

// ErrNoCounters is the answer of a backend that reads no counters.
var ErrNoCounters = errors.New("this backend reads no counters")

// Counters answers a counters request (the watch client's CountersFunc).
// It reads the kernel only, never the loop's state, so it runs apart from
// Run and never holds up a sync (nor waits for one).
func (a *Agent) Counters(ctx context.Context, ports []string) hostview.CountersAnswer {
	cr, ok := a.rules.(CounterReader)
	if !ok {
		return hostview.CountersAnswer{Error: ErrNoCounters.Error()}
	}
	rules, missing, err := cr.PortCounters(ctx, ports)
	ans := hostview.CountersAnswer{ReadAt: time.Now().UTC()}
	if err != nil {
		a.log.Warn("read counters", "ports", ports, "err", err)
		ans.Error = err.Error()
		return ans
	}
	ans.Ports = rules
	for _, p := range missing {
		if ans.Errors == nil {
			ans.Errors = map[string]string{}
		}
		ans.Errors[p] = "the port has no chains on this host (not enforced here yet, or rejected)"
	}
	return ans
}

// PortCounters reads the ports' chains with iptables -v -S.
func (r iptablesRules) PortCounters(ctx context.Context, ports []string) (map[string][]hostview.RuleCounter, []string, error) {
	out := map[string][]hostview.RuleCounter{}
	for _, f := range []iptables.Family{iptables.IPv4, iptables.IPv6} {
		fam := "IPv4"
		if f == iptables.IPv6 {
			fam = "IPv6"
		}
		var chains []string
		for _, p := range ports {
			c := hybrid.PortChainsUnder(hybrid.Wrap, p)
			chains = append(chains, c.In, c.Out, c.Spoof)
		}
		got, err := r.ChainCounters(ctx, f, chains)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range ports {
			c := hybrid.PortChainsUnder(hybrid.Wrap, p)
			for _, name := range []string{c.In, c.Out, c.Spoof} {
				rs, ok := got[name]
				if !ok {
					continue
				}
				if out[p] == nil {
					out[p] = []hostview.RuleCounter{} // a chain without rules still says the port is here
				}
				for i, l := range rs {
					out[p] = append(out[p], hostview.RuleCounter{Family: fam, Table: "filter", Chain: name, Number: i + 1,
						Rule: l.Rule, Packets: l.Counters.Packets, Bytes: l.Counters.Bytes})
				}
			}
		}
	}
	var missing []string
	for _, p := range ports {
		if _, ok := out[p]; !ok {
			missing = append(missing, p)
		}
	}
	return out, missing, nil
}

// PortCounters reads the ports' i and o chains of moat's ip and ip6
// tables (nft -j list chain). Those chains hold the iptables layout's i
// and o rules one for one, in order, the s chain folded into one
// anti-spoofing rule at the place of the o chain's jump to it
// (docs/nftables.md): each rule is reported under the iptables chain's
// name and position, with its origin tag instead of its text.
func (r nftRules) PortCounters(ctx context.Context, ports []string) (map[string][]hostview.RuleCounter, []string, error) {
	out := map[string][]hostview.RuleCounter{}
	for _, t := range []struct {
		id  nftables.TableID
		fam string
	}{{nftables.IPTable, "IPv4"}, {nftables.IP6Table, "IPv6"}} {
		var chains []string
		for _, p := range ports {
			chains = append(chains, nftrender.InChain(p), nftrender.OutChain(p))
		}
		got, err := r.s.ChainCounters(ctx, t.id, chains)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range ports {
			for _, c := range []struct {
				nft  string
				kind hybrid.ChainKind
			}{{nftrender.InChain(p), hybrid.ChainIn}, {nftrender.OutChain(p), hybrid.ChainOut}} {
				rs, ok := got[c.nft]
				if !ok {
					continue
				}
				if out[p] == nil {
					out[p] = []hostview.RuleCounter{}
				}
				for i, l := range rs {
					if !l.Counted {
						continue // a rule without a counter statement
					}
					out[p] = append(out[p], hostview.RuleCounter{Family: t.fam, Table: "filter", Chain: hybrid.PortChain(c.kind, p),
						Number: i + 1, Origin: l.Origin, Packets: l.Packets, Bytes: l.Bytes})
				}
			}
		}
	}
	var missing []string
	for _, p := range ports {
		if _, ok := out[p]; !ok {
			missing = append(missing, p)
		}
	}
	return out, missing, nil
}
