package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/watch"
)

// CountersFunc asks a host's agent for its ports' hit counters and waits
// for the answer (watch.Server.Counters with its default timeout).
type CountersFunc func(ctx context.Context, host string, ports []string) (*hostview.CountersAnswer, error)

// countedRule is a compiled rule with the host's counters, when known.
type countedRule struct {
	trace.ExplainRow
	// Counted: the host's agent reported this rule's counters (same
	// chain, position and text).
	Counted bool
	// Differs: the host holds another rule at this position.
	Differs bool
}

// portCounters are what the port page says of the counters.
type portCounters struct {
	// Note says why there are none, or what differs; ReadAt when the
	// agent read them (zero: none).
	Note   string
	ReadAt time.Time
}

// withCounters asks the port's host for the counters of the port's own
// chains and puts them on the compiled rows. It never fails the page: what
// went wrong is the note. host is shown only to admins.
func (c *Console) withCounters(ctx context.Context, rows []trace.ExplainRow, portID, host string, admin bool) ([]countedRule, portCounters) {
	out := make([]countedRule, len(rows))
	for i, r := range rows {
		out[i] = countedRule{ExplainRow: r}
	}
	var pc portCounters
	name := "the port's host"
	if admin {
		name = "host " + host
	}
	if c.counters == nil {
		pc.Note = "Hit counters are not shown: this console cannot ask the agents (run moat explain --port " + portID + " on the host)."
		return out, pc
	}
	a, err := c.counters(ctx, host, []string{portID})
	switch {
	case errors.Is(err, watch.ErrHostNotConnected):
		pc.Note = fmt.Sprintf("Hit counters are not shown: the agent of %s is not connected to this server (it is down, or follows another replica).", name)
		return out, pc
	case errors.Is(err, watch.ErrCountersTimeout):
		pc.Note = fmt.Sprintf("Hit counters are not shown: the agent of %s did not answer within %s.", name, watch.CountersTimeout)
		return out, pc
	case errors.Is(err, watch.ErrCountersBusy):
		pc.Note = "Hit counters are not shown: too many counters requests are in flight; reload in a moment."
		return out, pc
	case err != nil:
		// The error may name the host, which only admins may see.
		c.log.Warn("counters", "port", portID, "err", err)
		pc.Note = "Hit counters are not shown: the request failed (the server's log says why)."
		return out, pc
	case a.Error != "":
		pc.Note = fmt.Sprintf("Hit counters are not shown: the agent of %s says: %s.", name, a.Error)
		return out, pc
	case a.Errors[portID] != "":
		pc.Note = fmt.Sprintf("Hit counters are not shown: the agent of %s says: %s.", name, a.Errors[portID])
		return out, pc
	}
	type key struct {
		family, table, chain string
		number               int
	}
	got := map[key]hostview.RuleCounter{}
	for _, r := range a.Ports[portID] {
		got[key{r.Family, r.Table, r.Chain, r.Number}] = r
	}
	differ := 0
	for i := range out {
		r := &out[i]
		h, ok := got[key{r.Family, r.Table, r.Chain, r.Number}]
		if !ok {
			continue
		}
		if !sameCounted(h, r.ExplainRow) {
			r.Differs = true
			differ++
			continue
		}
		r.Counted, r.Packets, r.Bytes = true, h.Packets, h.Bytes
	}
	pc.ReadAt = a.ReadAt.UTC()
	pc.Note = fmt.Sprintf("Hit counters of the port's own chains, read by the agent of %s at %s.", name, pc.ReadAt.Format(time.RFC3339))
	if differ > 0 {
		pc.Note += fmt.Sprintf(" %d rule(s) differ from the host's (it has not applied the latest change yet?): their counters are not shown.", differ)
	}
	return out, pc
}

// sameCounted reports whether the host's rule h is the compiled rule r:
// the same text (iptables), or on the nftables backend, whose rules
// follow the i and o chains one for one, the same origin (the rule's
// kind, or for a group rule "sgr" and the group rules behind it).
func sameCounted(h hostview.RuleCounter, r trace.ExplainRow) bool {
	if h.Rule == "" && h.Origin != "" {
		return h.Origin == nftrender.OriginTag(&hybrid.Origin{Kind: hybrid.OriginKind(r.Kind), Rules: r.Rules})
	}
	return h.Rule == r.Rule || hybrid.RestoreRule(h.Rule) == hybrid.RestoreRule(r.Rule)
}
