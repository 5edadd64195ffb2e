package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/netlog"
	"github.com/moat-sg/moat/internal/neutron"
)

// The packets agents' log rules report (docs/logging.md):
//
//	POST /v2.0/moat/hosts/{host}/log-events  an agent's batch (its token, or an admin)
//	GET  /v2.0/moat/log-events?port_id=&limit=  the newest events, oldest first (admins)
//
// The server keeps the last logEventsKept in memory only: the agents'
// files are the record; this is for a console's recent view.

const logEventsKept = 10000

// logRing is a bounded ring of events.
type logRing struct {
	mu   sync.Mutex
	buf  []netlog.Event
	next int
	full bool
}

func (r *logRing) add(evs []netlog.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil {
		r.buf = make([]netlog.Event, logEventsKept)
	}
	for _, ev := range evs {
		r.buf[r.next] = ev
		r.next = (r.next + 1) % len(r.buf)
		r.full = r.full || r.next == 0
	}
}

// last returns up to limit of the newest events that keep says to,
// oldest first.
func (r *logRing) last(limit int, keep func(*netlog.Event) bool) []netlog.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []netlog.Event{}
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	for i := 0; i < n && len(out) < limit; i++ {
		ev := &r.buf[(r.next-1-i+len(r.buf))%max(len(r.buf), 1)]
		if keep(ev) {
			out = append(out, *ev)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// postLogEvents takes an agent's batch; each event is stamped with the
// host it came from, whatever it says.
func (s *Server) postLogEvents(w http.ResponseWriter, r *request, host string) error {
	raw, err := json.Marshal(r.body)
	if err != nil || r.body == nil {
		return neutron.BadRequest(`log events need a body: {"log_events": [...]}`)
	}
	var body netlog.EventsBody
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return neutron.BadRequest("bad log events: %s", err.Error())
	}
	if len(body.Events) > netlog.MaxPost {
		return neutron.BadRequest("at most %d log events a request", netlog.MaxPost)
	}
	for i := range body.Events {
		body.Events[i].Host = host
	}
	s.logEvents.add(body.Events)
	writeNoContent(w)
	return nil
}

// listLogEvents is GET /v2.0/moat/log-events (admins; a member sees none,
// as with logs).
func (s *Server) listLogEvents(w http.ResponseWriter, r *request) error {
	if !r.ctx.IsAdmin {
		return policyDenied("rule:get_log")
	}
	limit := 1000
	if v := r.query.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return neutron.BadRequest("limit must be a positive integer, not %q", v)
		}
		limit = min(n, logEventsKept)
	}
	port, host := r.query.Get("port_id"), r.query.Get("host")
	evs := s.logEvents.last(limit, func(ev *netlog.Event) bool {
		return (port == "" || ev.PortID == port) && (host == "" || ev.Host == host)
	})
	writeJSON(w, http.StatusOK, netlog.EventsBody{Events: evs})
	return nil
}
