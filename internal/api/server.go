// Package api serves the Neutron v2.0 REST API for the resources moat
// implements, with Neutron's routes, status codes, error bodies, list
// semantics and identity models, over the store.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/metrics"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

const requestIDHeader = "X-Openstack-Request-Id"

// maxBodyBytes bounds request bodies; a bulk POST of thousands of rules
// fits comfortably.
const maxBodyBytes = 8 << 20

// Options configure a Server.
type Options struct {
	Store *store.Store
	Auth  Authenticator
	// Quotas are the default limits per project (see DefaultQuotas).
	Quotas map[string]int64
	// Networks is the ML2 configuration (types, ranges, MTU).
	Networks *neutron.NetworkConfig
	Logger   *slog.Logger
	// Watch serves the agents' watch streams and reports; nil builds one
	// with the defaults over Store.
	Watch *watch.Server
	// AgentTokens are the per-host agent credentials (nil: none).
	AgentTokens *AgentTokens
}

// Server is the Neutron API over a store.
type Server struct {
	store  *store.Store
	auth   Authenticator
	quotas map[string]int64
	netcfg neutron.NetworkConfig
	log    *slog.Logger
	watch  *watch.Server
	tokens *AgentTokens
	// networks are looked up by port and subnet creates too.
	networks *resource[neutron.Network, neutron.NetworkRequest]
	// collections are the resources' routes, by collection path.
	collections map[string]collection
	// logs is /v2.0/log/logs (the logging extension's prefix).
	logs collection
	// logEvents are the agents' latest logged packets.
	logEvents logRing
}

// New builds a server.
func New(o Options) *Server {
	s := &Server{store: o.Store, auth: o.Auth, quotas: DefaultQuotas(), netcfg: neutron.DefaultNetworkConfig(), log: o.Logger,
		watch: o.Watch, tokens: o.AgentTokens}
	if o.Networks != nil {
		s.netcfg = *o.Networks
	}
	for k, v := range o.Quotas {
		s.quotas[k] = v
	}
	if s.auth == nil {
		s.auth = NoAuth{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.watch == nil {
		s.watch = watch.New(watch.Config{Store: o.Store, Logger: s.log})
	}
	s.networks = s.networkResource()
	s.collections = map[string]collection{
		"security-groups":      s.securityGroupResource().routes(s),
		"security-group-rules": s.ruleResource().routes(s),
		"networks":             s.networks.routes(s),
		"subnets":              s.subnetResource().routes(s),
		"ports":                s.portResource().routes(s),
		"rbac-policies":        s.rbacResource().routes(s),
		"address-groups":       s.addressGroupRoutes(),
	}
	s.logs = s.logResource().routes(s)
	return s
}

// request is what a handler gets: the caller, the parsed path and body.
type request struct {
	*http.Request
	ctx *neutron.Context
	// segs are the path segments after /v2.0, with a trailing ".json" cut
	// from the last one.
	segs []string
	// query is the parsed query string (see parseQuery).
	query url.Values
	body  any
}

type handlerFunc func(w http.ResponseWriter, r *request) error

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK, route: "unmatched"}
	defer func() {
		if rec.route != "" { // the watch stream's duration is not a request's
			metrics.APIRequestDuration.WithLabelValues(rec.route, metricMethod(r.Method), strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
		}
		if p := recover(); p != nil {
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if !rec.wrote {
				writeError(rec, r, neutron.InternalError())
			}
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"request_id", rec.Header().Get(requestIDHeader), "duration", time.Since(start))
	}()
	s.serve(rec, r)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	route  string // the metrics label; "" observes nothing
}

// metricMethod bounds the method label to the methods the API serves.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status, s.wrote = code, true
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// setRoute names the request's route for the metrics (w is the
// recorder ServeHTTP passes down).
func setRoute(w http.ResponseWriter, route string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.route = route
	}
}

// Unwrap lets http.ResponseController (httpserve.NoWriteTimeout, flushing)
// reach the connection through the recorder.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == metrics.Path:
		setRoute(w, metrics.Path)
		metrics.Handler().ServeHTTP(w, r)
		return
	case path == "/" || path == "":
		setRoute(w, "/")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeJSON(w, http.StatusMethodNotAllowed, object{{"code", 405}, {"title", "Method Not Allowed"}, {"description", nil}})
			return
		}
		writeJSON(w, http.StatusOK, versionsDocument(r))
		return
	case path == "/v2.0" || strings.HasPrefix(path, "/v2.0/"):
	default:
		writeJSON(w, http.StatusNotFound, object{{"code", 404}, {"title", "Not Found"}, {"description", nil}})
		return
	}
	w.Header().Set(requestIDHeader, "req-"+uuid.NewString())
	// A host agent's token is known here, in every identity mode; any
	// other credential goes to the authenticator.
	var ctx *neutron.Context
	if host, ok := s.tokens.Host(r.Header.Get("X-Auth-Token")); ok {
		ctx = &neutron.Context{UserID: "moat-agent:" + host, AgentHost: host}
	} else if ctx, ok = authenticate(w, r, s.auth, s.log); !ok {
		return
	}
	req := &request{Request: r, ctx: ctx}
	if path == "/v2.0" {
		writeError(w, r, neutron.NotFoundGeneric())
		return
	}
	rest := strings.TrimPrefix(path, "/v2.0/")
	if rest != "" {
		req.segs = strings.Split(strings.TrimSuffix(rest, "/"), "/")
		last := len(req.segs) - 1
		req.segs[last] = strings.TrimSuffix(req.segs[last], ".json")
	}
	if strings.ContainsRune(path, 0) || strings.Contains(r.URL.RawQuery, "%00") {
		writeError(w, r, errNUL)
		return
	}
	var err error
	if req.query, err = parseQuery(r.URL.RawQuery); err != nil {
		writeError(w, r, err)
		return
	}
	h, err := s.route(req)
	if err == nil {
		setRoute(w, metrics.Route(req.segs, true))
	}
	if err == nil && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		req.body, err = readBody(r)
	}
	if err == nil {
		err = h(w, req)
	}
	if err != nil {
		writeError(w, r, err)
	}
}

// readBody decodes a JSON body; numbers stay json.Number so that
// validation sees what the client sent.
func readBody(r *http.Request) (any, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, neutron.BadRequest("Failed to read the request body")
	}
	if len(raw) > maxBodyBytes {
		return nil, &neutron.Error{Status: http.StatusRequestEntityTooLarge, Type: "HTTPRequestEntityTooLarge",
			Message: fmt.Sprintf("Request is too large: more than %d bytes.", maxBodyBytes)}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, neutron.MalformedRequestBody()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, neutron.MalformedRequestBody()
	}
	if hasNUL(v) {
		return nil, errNUL
	}
	return v, nil
}

// errNUL refuses NUL characters anywhere in a request: no attribute needs
// them, and PostgreSQL cannot store them in text.
var errNUL = neutron.BadRequest("Invalid input: NUL characters are not accepted")

func hasNUL(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, 0)
	case []any:
		for _, e := range x {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.ContainsRune(k, 0) || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// route picks the handler for a request, or says why there is none.
func (s *Server) route(r *request) (handlerFunc, error) {
	segs, m := r.segs, r.Method
	if len(segs) == 0 {
		return onlyGet(m, s.v2Root)
	}
	switch segs[0] {
	case "extensions":
		switch len(segs) {
		case 1:
			return onlyGet(m, s.listExtensions)
		case 2:
			return onlyGet(m, s.showExtension)
		}
	case "moat":
		return s.agentRoutes(m, segs)
	}
	if r.ctx.AgentHost != "" {
		// An agent token is good for its host's watch and reports only.
		return nil, policyDenied("(rule:moat_agent) may use only /v2.0/moat/hosts/" + r.ctx.AgentHost)
	}
	switch segs[0] {
	case "quotas":
		return s.quotaRoutes(m, segs)
	case "log":
		return s.logRoutes(r)
	}
	if c, ok := s.collections[segs[0]]; ok {
		return collectionRoutes(m, segs, c)
	}
	return nil, neutron.NotFoundGeneric()
}

func onlyGet(method string, h handlerFunc) (handlerFunc, error) {
	if method != http.MethodGet {
		return nil, neutron.MethodNotAllowed()
	}
	return h, nil
}

// collection is the handler set of a Neutron collection resource.
type collection struct {
	list, create, show, update, del handlerFunc
	// notFound is what Neutron answers to PUT or DELETE on the collection
	// itself (it looks up the id None).
	notFound *neutron.Error
	// tags handles /{id}/tags[/{tag}], nil if the resource has no tags.
	tags func(method string, segs []string) (handlerFunc, error)
	// actions are the member actions, PUT /{id}/{action} (Neutron's
	// ACTION_MAP: an address group's add_addresses).
	actions map[string]handlerFunc
}

func collectionRoutes(m string, segs []string, c collection) (handlerFunc, error) {
	switch len(segs) {
	case 1:
		switch m {
		case http.MethodGet:
			return c.list, nil
		case http.MethodPost:
			return c.create, nil
		case http.MethodPut, http.MethodDelete:
			return nil, c.notFound
		}
		return nil, neutron.MethodNotAllowed()
	case 2:
		switch m {
		case http.MethodGet:
			return c.show, nil
		case http.MethodPut:
			return c.update, nil
		case http.MethodDelete:
			return c.del, nil
		}
		return nil, neutron.MethodNotAllowed()
	case 3, 4:
		if segs[2] == "tags" && c.tags != nil {
			return c.tags(m, segs)
		}
		if h, ok := c.actions[segs[2]]; ok && len(segs) == 3 {
			if m != http.MethodPut {
				return nil, neutron.MethodNotAllowed()
			}
			return h, nil
		}
	}
	return nil, neutron.NotFoundGeneric()
}

// baseURL is the scheme and host the client used, for links.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return scheme + "://" + r.Host
}
