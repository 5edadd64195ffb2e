package agent

import (
	"context"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hybrid"
)

// IPTables drives the iptables syncer (its statistics are dropped).
func IPTables(s *iptables.Syncer) Rules { return iptablesRules{s} }

type iptablesRules struct{ *iptables.Syncer }

func (r iptablesRules) Apply(ctx context.Context, rs *firewall.Ruleset) error {
	_, err := r.Syncer.Apply(ctx, rs)
	return err
}

// Wire drives a wiring.Wirer (the hybrid plug, or its fake).
func Wire(w wiring.Wirer) Wiring { return wirer{w} }

type wirer struct{ wiring.Wirer }

func (w wirer) Plug(ctx context.Context, p WirePort) error {
	return w.Wirer.Plug(ctx, wiring.Port{ID: p.ID, MAC: p.MAC, NetworkID: p.NetworkID, Tag: p.Tag, MTU: p.MTU})
}

func (w wirer) Plugged(ctx context.Context) ([]Plugged, error) {
	ps, err := w.Wirer.Plugged(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Plugged, 0, len(ps))
	for _, p := range ps {
		id := p.PortID
		if id == "" {
			id = p.DevID // a half-known leftover: the agent unplugs it
		}
		pl := Plugged{ID: id, NetworkID: p.NetworkID, Tag: p.Tag}
		if p.Complete() {
			// Only then may the agent take the port as plugged: a
			// half-wired one must differ from what it wants, so that
			// the first sync repairs it.
			pl.MAC, pl.MTU = p.MAC, p.MTU
		}
		out = append(out, pl)
	}
	return out, nil
}

// NFTables drives the nftables syncer with moat's nftables layout
// (nftrender): the compiled ruleset is rendered into moat's bridge, ip
// and ip6 tables, sets and maps included, and applied in one nft
// transaction. Use it with NoSets: the remote-group sets live in the same
// tables and change in the same transaction.
func NFTables(s *nftables.Syncer) Rules { return nftRules{s, nftrender.NewRenderer()} }

// nftRules renders with a Renderer that keeps the translations of the
// last ruleset (the agent's calls are sequential).
type nftRules struct {
	s  *nftables.Syncer
	rd *nftrender.Renderer
}

func (r nftRules) Apply(ctx context.Context, rs *firewall.Ruleset) error {
	out, err := r.rd.Render(rs)
	if err != nil {
		return err
	}
	_, err = r.s.Apply(ctx, out)
	return err
}

func (r nftRules) Check(ctx context.Context, rs *firewall.Ruleset) ([]string, error) {
	out, err := r.rd.Render(rs)
	if err != nil {
		return nil, err
	}
	return r.s.Check(ctx, out)
}

// CanaryPresent reports whether the ip table still has its canary chain.
// It costs no process unless another writer committed since the syncer
// last looked (the nf_tables generation moved).
func (r nftRules) CanaryPresent(ctx context.Context) (bool, error) {
	return r.s.HasChain(ctx, nftables.IPTable, nftrender.ChainCanary)
}

func (r nftRules) Invalidate() { r.s.Invalidate() }

// InstalledZones reads the zones of the ports a previous run left: the
// zone map gives each port bridge its zone, the forward map the port
// chain its ingress jumps to, whose name is the port id.
func (r nftRules) InstalledZones(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, t := range []nftables.TableID{nftables.IPTable, nftables.IP6Table} {
		zones, err := r.s.Elements(ctx, t, nftrender.MapZone)
		if err != nil {
			return nil, err
		}
		dispatch, err := r.s.Elements(ctx, t, nftrender.MapForward)
		if err != nil {
			return nil, err
		}
		for key, verdict := range dispatch {
			bridge, dir, ok := strings.Cut(key, " . ")
			target, jump := strings.CutPrefix(verdict, "jump ")
			if !ok || !jump || dir != "0x0" {
				continue
			}
			id, d, ok := nftrender.PortOfChain(target)
			if !ok || d != hybrid.Ingress {
				continue
			}
			z, err := strconv.Atoi(zones[bridge])
			if err != nil {
				continue // stateless: no zone in the kernel
			}
			if _, seen := out[id]; !seen {
				out[id] = z
			}
		}
	}
	return out, nil
}

// NoSets is the Sets of a backend whose sets are part of its rules
// (nftables): nothing to do.
func NoSets() Sets { return noSets{} }

type noSets struct{}

func (noSets) Apply(context.Context, []firewall.IPSet) ([]string, error) { return nil, nil }
func (noSets) Destroy(context.Context, []string) error                   { return nil }
func (noSets) Check(context.Context, []firewall.IPSet) ([]string, error) { return nil, nil }
func (noSets) Invalidate()                                               {}
