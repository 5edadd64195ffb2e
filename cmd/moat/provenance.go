package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// withProvenance maps the rules of live or dumped rulesets back to their
// security group rule ids when moat's store is at hand (--db, or the
// default database when it exists): the store says which host the port is
// bound to, and compiling that host's state tells which group rule
// produced which line. Only the port's own rules are mapped unless
// wholeHost is set (a batch of packets may name any port of the host). It
// returns a note for the output, or "".
func (s *ruleSource) withProvenance(ctx context.Context, h *trace.Host, portID string, wholeHost bool) string {
	if s.input != "" || portID == "" {
		return "" // a spec already carries its rule ids; --tap has no port id
	}
	db := s.db
	if db == "" {
		if _, err := os.Stat(strings.TrimPrefix(store.DefaultURL, "sqlite://")); err != nil {
			return ""
		}
		db = store.DefaultURL
	}
	st, err := store.OpenMode(ctx, db, store.ReadOnly)
	if err != nil {
		return "; rule ids unknown: " + err.Error()
	}
	defer st.Close()
	var snap *store.HostSnapshot
	var fullID string
	err = st.Read(ctx, func(tx *store.Tx) error {
		p, err := tx.FindPort(ctx, portID)
		if err != nil {
			return err
		}
		if p == nil {
			return fmt.Errorf("port %s is not in %s", portID, db)
		}
		fullID = p.ID
		snap, err = tx.HostSnapshot(ctx, p.HostID)
		return err
	})
	if err != nil {
		return "; rule ids unknown: " + err.Error()
	}
	// Options only change rendering details the keys are matched on, so
	// take the agent's defaults.
	hs := agent.HostState(snap, firewall.Options{EnableIPSet: true, CommentRules: true}, nil)
	var prov *trace.Provenance
	if wholeHost {
		prov, err = moatrules.Provenance(hs)
	} else {
		prov, err = moatrules.PortProvenance(hs, fullID)
	}
	if err != nil {
		return "; rule ids unknown: " + err.Error()
	}
	h.Provenance = prov
	return "; rule ids from " + db
}
