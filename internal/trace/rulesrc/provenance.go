package rulesrc

import (
	"context"
	"fmt"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// WantsProvenance reports whether the rules of port portID need a store
// to say where they came from: a spec's compiled rules carry their rule
// ids already, and a trace by tap has no port id to look up.
func (s *Source) WantsProvenance(portID string) bool { return s.Spec == "" && portID != "" }

// Provenance names the security group rules behind the rules of h from
// moat's store st (called where in the note): the store says which host
// the port is bound to, and compiling that host's state, with the options
// h's rules were compiled with (moatrules.DumpProvenance), tells which
// group rule produced which line. Only the port's own rules are mapped
// unless wholeHost is set (a batch of packets may name any port of the
// host). It returns a note for the output.
func Provenance(ctx context.Context, st *store.Store, where string, h *trace.Host, portID string, wholeHost bool) string {
	snap, fullID, err := portHost(ctx, st, where, portID)
	if err != nil {
		return "; rule ids unknown: " + err.Error()
	}
	// The options are the dump's (DumpProvenance), not these.
	hs := agent.HostState(snap, firewall.Options{}, nil)
	var prov *trace.Provenance
	if wholeHost {
		prov, err = moatrules.DumpProvenance(h, hs)
	} else {
		prov, err = moatrules.DumpProvenance(h, hs, fullID)
	}
	if err != nil {
		return "; rule ids unknown: " + err.Error()
	}
	h.Provenance = prov
	return "; rule ids from " + where
}

// NFTProvenance gives an nftables host's trace the port's security groups
// from moat's store st (the rule ids are in the rules' tags already), for
// the suggestion. It returns a note for the output.
func NFTProvenance(ctx context.Context, st *store.Store, where string, h *trace.NFTHost, portID string) string {
	snap, fullID, err := portHost(ctx, st, where, portID)
	if err != nil {
		return "; groups unknown: " + err.Error()
	}
	prov, err := moatrules.PortProvenance(agent.HostState(snap, firewall.Options{}, nil), fullID)
	if err != nil {
		return "; groups unknown: " + err.Error()
	}
	h.Provenance = prov
	return "; groups from " + where
}

// portHost reads the host the port (an id or a unique prefix) is bound to,
// and the port's full id.
func portHost(ctx context.Context, st *store.Store, where, portID string) (snap *store.HostSnapshot, fullID string, err error) {
	err = st.Read(ctx, func(tx *store.Tx) error {
		p, err := tx.FindPort(ctx, portID)
		if err != nil {
			return err
		}
		if p == nil {
			return fmt.Errorf("port %s is not in %s", portID, where)
		}
		fullID = p.ID
		snap, err = tx.HostSnapshot(ctx, p.HostID)
		return err
	})
	return snap, fullID, err
}
