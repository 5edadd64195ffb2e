package api

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"unicode"

	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/watch"
)

// The agents' API (docs/agent.md):
//
//	GET  /v2.0/moat/hosts/{host}/watch?revision=N  the host's watch stream
//	POST /v2.0/moat/hosts/{host}/report            the agent's report
//	GET  /v2.0/moat/hosts/{host}                   what this server knows of the agent
//	GET  /v2.0/moat/hosts/{host}/counters?port_id=  hit counters, asked of the agent
//	POST /v2.0/moat/hosts/{host}/counters          the agent's answer
//	POST /v2.0/moat/hosts/{host}/log-events        packets its log rules reported (logevents.go)
//
// Allowed to admins (and Keystone's service role) for any host, and to a
// host's agent token for that host only.

// AgentTokens maps per-host agent tokens to their hosts. Only the tokens'
// SHA-256 digests are kept.
type AgentTokens struct {
	hosts map[[sha256.Size]byte]string
}

// MinAgentTokenLen is the shortest token accepted.
const MinAgentTokenLen = 16

// NewAgentTokens builds the table from host → token.
func NewAgentTokens(tokens map[string]string) (*AgentTokens, error) {
	t := &AgentTokens{hosts: map[[sha256.Size]byte]string{}}
	for host, tok := range tokens {
		if err := t.add(host, tok); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Add adds a host's token.
func (t *AgentTokens) Add(host, tok string) error { return t.add(host, tok) }

func (t *AgentTokens) add(host, tok string) error {
	if err := validHost(host); err != nil {
		return err
	}
	if len(tok) < MinAgentTokenLen || strings.IndexFunc(tok, unicode.IsSpace) >= 0 {
		return fmt.Errorf("the token of host %s must be %d or more characters without spaces", host, MinAgentTokenLen)
	}
	sum := sha256.Sum256([]byte(tok))
	if other, dup := t.hosts[sum]; dup {
		return fmt.Errorf("hosts %s and %s have the same token", other, host)
	}
	t.hosts[sum] = host
	return nil
}

// ReadAgentTokens reads a token file: one "HOST TOKEN" per line; blank
// lines and lines starting with # are skipped.
func ReadAgentTokens(r io.Reader) (*AgentTokens, error) {
	t := &AgentTokens{hosts: map[[sha256.Size]byte]string{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want HOST TOKEN", n)
		}
		if err := t.add(f[0], f[1]); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// LoadAgentTokens reads a token file (see ReadAgentTokens); it refuses a
// file others may read.
func LoadAgentTokens(path string) (*AgentTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agent tokens: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("agent tokens %s: mode %v lets others read it (chmod 600)", path, fi.Mode().Perm())
	}
	t, err := ReadAgentTokens(f)
	if err != nil {
		return nil, fmt.Errorf("agent tokens %s: %w", path, err)
	}
	return t, nil
}

// Host returns the host a token belongs to.
func (t *AgentTokens) Host(tok string) (string, bool) {
	if t == nil || tok == "" {
		return "", false
	}
	h, ok := t.hosts[sha256.Sum256([]byte(tok))]
	return h, ok
}

// Len is the number of tokens.
func (t *AgentTokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.hosts)
}

func validHost(h string) error {
	if h == "" || len(h) > 255 || strings.ContainsAny(h, "/\\") || strings.IndexFunc(h, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}) >= 0 {
		return fmt.Errorf("host name %q: want 1 to 255 characters without spaces, slashes or control characters", h)
	}
	return nil
}

// agentRoutes routes /v2.0/moat/hosts/{host}[/watch|/report].
func (s *Server) agentRoutes(m string, segs []string) (handlerFunc, error) {
	if len(segs) == 2 && segs[1] == "log-events" {
		return onlyGet(m, s.listLogEvents)
	}
	if len(segs) < 3 || len(segs) > 4 || segs[1] != "hosts" {
		return nil, neutron.NotFoundGeneric()
	}
	host := segs[2]
	if err := validHost(host); err != nil {
		return nil, neutron.BadRequest("%s", err.Error())
	}
	var h handlerFunc
	switch {
	case len(segs) == 3:
		if m != http.MethodGet {
			return nil, neutron.MethodNotAllowed()
		}
		h = func(w http.ResponseWriter, r *request) error {
			writeJSON(w, http.StatusOK, map[string]any{"host": s.watch.Host(host)})
			return nil
		}
	case segs[3] == "watch":
		if m != http.MethodGet {
			return nil, neutron.MethodNotAllowed()
		}
		h = func(w http.ResponseWriter, r *request) error {
			from, err := watch.ParseRevision(r.query.Get("revision"))
			if err != nil {
				return neutron.BadRequest("%s", err.Error())
			}
			setRoute(w, "") // a stream lasts as long as its agent follows it: not a request's duration
			s.watch.Watch(w, r.Request, host, from)
			return nil
		}
	case segs[3] == "report":
		if m != http.MethodPost {
			return nil, neutron.MethodNotAllowed()
		}
		h = func(w http.ResponseWriter, r *request) error { return s.report(w, r, host) }
	case segs[3] == "counters": // counters.go
		if h = s.countersRoute(m, host); h == nil {
			return nil, neutron.MethodNotAllowed()
		}
	case segs[3] == "log-events":
		if m != http.MethodPost {
			return nil, neutron.MethodNotAllowed()
		}
		h = func(w http.ResponseWriter, r *request) error { return s.postLogEvents(w, r, host) }
	default:
		return nil, neutron.NotFoundGeneric()
	}
	return func(w http.ResponseWriter, r *request) error {
		if !mayActForHost(r.ctx, host) {
			return policyDenied(fmt.Sprintf("(rule:moat_agent and host:%s)", host))
		}
		return h(w, r)
	}, nil
}

// mayActForHost: admins and Keystone's service role for any host, an
// agent token for its own host.
func mayActForHost(c *neutron.Context, host string) bool {
	if c.AgentHost != "" {
		return c.AgentHost == host
	}
	if c.IsAdmin {
		return true
	}
	for _, r := range c.Roles {
		if strings.EqualFold(r, "service") {
			return true
		}
	}
	return false
}

func (s *Server) report(w http.ResponseWriter, r *request, host string) error {
	// The body was decoded generically; decode it again strictly.
	raw, err := json.Marshal(r.body)
	if err != nil || r.body == nil {
		return neutron.BadRequest("a report needs a body: {\"revision\": N, \"ports\": [{\"id\", \"status\", \"reason\"}]}")
	}
	var rep hostview.Report
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		return neutron.BadRequest("bad report: %s", err.Error())
	}
	switch err := s.watch.Report(r.Context(), host, rep); {
	case err == nil:
	case errors.Is(err, watch.ErrForbiddenPorts):
		return policyDenied(err.Error())
	case errors.Is(err, watch.ErrBadReport):
		return neutron.BadRequest("%s", err.Error())
	default:
		return err
	}
	writeNoContent(w)
	return nil
}
