package console

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/netlog"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// portsData is the ports list.
type portsData struct {
	Ports []port
	Names map[string]string
}

func (c *Console) portsPage(w http.ResponseWriter, r *http.Request, who *caller) {
	ports, err := c.listPorts(r.Context(), who, projectQuery(who))
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	gs, err := c.listGroups(r.Context(), who)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	p := c.newPage(r, who, "Ports", "ports")
	p.Data = portsData{Ports: ports, Names: groupNames(gs)}
	c.render(w, http.StatusOK, "ports", p)
}

// portData is a port's page.
type portData struct {
	Port  *port
	Names map[string]string
	// Host is the host the port is bound to ("" when it is not).
	Host string
	// Rules are the port's compiled rules; RulesError why there are none.
	Rules      []trace.ExplainRow
	RulesError string
	// Rows are Rules with the host's hit counters (counters.go).
	Rows     []countedRule
	Counters portCounters
	// Events are the port's log events when the server has the log-events
	// endpoint; EventsNote says why there are none.
	Events     *logEvents
	EventsNote string
}

func (c *Console) portPage(w http.ResponseWriter, r *http.Request, who *caller, id string) {
	p, err := c.getPort(r.Context(), who, id)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	gs, err := c.listGroups(r.Context(), who)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	d := portData{Port: p, Names: groupNames(gs)}
	h, host, err := c.compileHost(r.Context(), p.ID)
	if who.Admin {
		// Which host a port is on is for admins only, as in the API.
		d.Host = host
	}
	if err != nil {
		d.RulesError = err.Error()
	} else if ex, err := h.Explain(p.ID, ""); err != nil {
		d.RulesError = err.Error()
	} else {
		d.Rules = ex.Rows
		d.Rows, d.Counters = c.withCounters(r.Context(), ex.Rows, p.ID, host, who.Admin)
	}
	d.Events, d.EventsNote = c.logEvents(r.Context(), who, p.ID)
	pg := c.newPage(r, who, "Port "+portTitle(p), "ports")
	pg.Data = d
	c.render(w, http.StatusOK, "port", pg)
}

func portTitle(p *port) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// errUnbound is a port no host enforces yet.
var errUnbound = errors.New("the port is not bound to a host (binding:host_id is empty): no agent enforces rules for it yet")

// compileHost compiles, in memory and with the agent's default options,
// the rules of the host port id is bound to: what that host's agent
// enforces. The caller must have shown (through the API) that it may see
// the port. It returns the host's name too.
func (c *Console) compileHost(ctx context.Context, id string) (*trace.Host, string, error) {
	if c.store == nil {
		return nil, "", errors.New("the console has no store to compile rules from")
	}
	var snap *store.HostSnapshot
	var host string
	err := c.store.Read(ctx, func(tx *store.Tx) error {
		p, err := tx.FindPort(ctx, id)
		if err != nil {
			return err
		}
		if p == nil || p.ID != id {
			return errors.New("the port is gone")
		}
		if host = p.HostID; host == "" {
			return errUnbound
		}
		snap, err = tx.HostSnapshot(ctx, host)
		return err
	})
	if err != nil {
		return nil, host, err
	}
	hs := agent.HostState(snap, firewall.Options{EnableIPSet: true, CommentRules: true}, nil)
	h, err := moatrules.Host(hs)
	return h, host, err
}

// logEvents are a port's log events from GET /v2.0/moat/log-events, shown
// as a table of their fields.
type logEvents struct {
	Columns []string
	Rows    [][]string
}

// maxEvents bounds the events a port's page shows.
const maxEvents = 50

// logEvents asks the API for the port's log events, newest first. A
// server without the endpoint (404) or a caller it refuses (the logging
// API is admin-only, as Neutron's) gets a note instead.
func (c *Console) logEvents(ctx context.Context, who *caller, portID string) (*logEvents, string) {
	var out netlog.EventsBody
	err := c.call(ctx, who, http.MethodGet, "moat/log-events", url.Values{"port_id": {portID}, "limit": {strconv.Itoa(maxEvents)}}, nil, &out)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed):
		return nil, "This server does not record log events."
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		return nil, "Log events are shown to admins only (Neutron's logging API is admin-only)."
	case err != nil:
		return nil, "Log events unavailable: " + err.Error()
	}
	if len(out.Events) == 0 {
		return nil, "No log events for this port yet (a network log covering it must exist: openstack network log create)."
	}
	ev := &logEvents{Columns: []string{"time", "host", "direction", "verdict", "protocol", "source", "destination", "decided by"}}
	for _, e := range out.Events {
		decided := e.SecurityGroupRuleID
		if decided == "" {
			decided = e.Protection
		}
		ev.Rows = append(ev.Rows, []string{e.Time.UTC().Format("2006-01-02 15:04:05.000"), e.Host, e.Direction, e.Verdict,
			strconv.Itoa(e.Protocol), endpoint(e.Src, e.SrcPort), endpoint(e.Dst, e.DstPort), decided})
	}
	return ev, ""
}

// endpoint is an address with its port, if any.
func endpoint(addr string, port int) string {
	if port == 0 {
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}
