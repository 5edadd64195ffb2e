package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/watch"
)

// countersRoute serves /v2.0/moat/hosts/{host}/counters (docs/agent.md):
// GET asks the host's agent, over its watch stream on this server, for
// the hit counters of ?port_id= (repeated) and waits for the answer; POST
// is the agent's answer. agentRoutes has checked who may act for host.
func (s *Server) countersRoute(m, host string) handlerFunc {
	switch m {
	case http.MethodGet:
		return func(w http.ResponseWriter, r *request) error {
			a, err := s.watch.Counters(r.Context(), host, r.query["port_id"], 0)
			if err != nil {
				return countersError(err)
			}
			writeJSON(w, http.StatusOK, map[string]any{"counters": a})
			return nil
		}
	case http.MethodPost:
		return func(w http.ResponseWriter, r *request) error {
			raw, err := json.Marshal(r.body)
			if err != nil || r.body == nil {
				return neutron.BadRequest("counters need a body: {\"request_id\": ID, \"ports\": {PORT: [rule counters]}}")
			}
			var a hostview.CountersAnswer
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&a); err != nil {
				return neutron.BadRequest("bad counters: %s", err.Error())
			}
			if err := s.watch.Answer(host, a); err != nil {
				return countersError(err)
			}
			writeNoContent(w)
			return nil
		}
	}
	return nil
}

// countersError maps the watch server's counters errors to API errors.
func countersError(err error) error {
	switch {
	case errors.Is(err, watch.ErrBadCounters):
		return neutron.BadRequest("%s", err.Error())
	case errors.Is(err, watch.ErrCountersForbidden):
		return policyDenied(err.Error())
	case errors.Is(err, watch.ErrUnknownCounters):
		return &neutron.Error{Status: http.StatusNotFound, Type: "CountersRequestNotFound", Message: err.Error()}
	case errors.Is(err, watch.ErrHostNotConnected):
		return &neutron.Error{Status: http.StatusConflict, Type: "HostNotConnected", Message: err.Error()}
	case errors.Is(err, watch.ErrCountersBusy):
		return &neutron.Error{Status: http.StatusServiceUnavailable, Type: "CountersBusy", Message: err.Error()}
	case errors.Is(err, watch.ErrCountersTimeout):
		return &neutron.Error{Status: http.StatusGatewayTimeout, Type: "CountersTimeout", Message: err.Error()}
	}
	return err
}
