package agent

import (
	"context"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall"
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
