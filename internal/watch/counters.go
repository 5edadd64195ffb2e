package watch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/store"
)

// Hit counters on demand (docs/agent.md): the server never connects to an
// agent, so a request for a port's counters goes down the host's open
// watch stream(s) on this server as an EventCounters line, and the agent
// posts its answer to /v2.0/moat/hosts/{host}/counters. The waiter is
// woken by the answer, or gives up after its timeout. Requests live in
// memory only, bounded, and expire: they are a debugging aid, not state.

// Errors of Counters and Answer.
var (
	ErrHostNotConnected = errors.New("host not connected to this server")
	ErrCountersTimeout  = errors.New("the host's agent did not answer in time")
	ErrCountersBusy     = errors.New("too many counters requests in flight")
	ErrBadCounters      = errors.New("bad counters")
	// ErrCountersForbidden is an answer to a request sent to another host.
	ErrCountersForbidden = errors.New("counters request of another host")
	// ErrUnknownCounters is an answer to a request this server did not
	// send, or that expired.
	ErrUnknownCounters = errors.New("unknown or expired counters request")
)

// CountersTimeout is how long Counters waits for the agent by default.
const CountersTimeout = 2 * time.Second

const (
	// countersTTL is how long a request (and its answer) is kept.
	countersTTL = 30 * time.Second
	// maxCountersPending bounds the requests kept at once.
	maxCountersPending = 256
	// countersQueue is how many requests a stream holds before it sends
	// them (it sends between rounds).
	countersQueue = 4
	// maxCountersRules bounds the rules of one port in an answer.
	maxCountersRules = 10000
)

// counterHub holds the streams that can carry requests, and the requests.
// The zero value is ready.
type counterHub struct {
	mu      sync.Mutex
	streams map[string]map[chan hostview.CountersRequest]bool // by host
	pending map[string]*countersWait                          // by request id
}

type countersWait struct {
	host    string
	ports   map[string]bool
	expires time.Time
	done    chan struct{} // closed with answer set
	answer  *hostview.CountersAnswer
}

// join registers a stream of host; its run loop sends what the channel
// brings.
func (h *counterHub) join(host string) chan hostview.CountersRequest {
	ch := make(chan hostview.CountersRequest, countersQueue)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams == nil {
		h.streams = map[string]map[chan hostview.CountersRequest]bool{}
	}
	if h.streams[host] == nil {
		h.streams[host] = map[chan hostview.CountersRequest]bool{}
	}
	h.streams[host][ch] = true
	return ch
}

func (h *counterHub) leave(host string, ch chan hostview.CountersRequest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.streams[host], ch)
	if len(h.streams[host]) == 0 {
		delete(h.streams, host)
	}
}

// expire drops old requests; h.mu is held.
func (h *counterHub) expire(now time.Time) {
	for id, w := range h.pending {
		if now.After(w.expires) {
			delete(h.pending, id)
		}
	}
}

// Counters asks host's agent for the hit counters of ports' rules and
// waits for the answer up to timeout (0: CountersTimeout) or ctx. The
// ports must be bound to host. Only the streams this server serves carry
// the request: a host whose agent follows another replica is
// ErrHostNotConnected here.
func (s *Server) Counters(ctx context.Context, host string, ports []string, timeout time.Duration) (*hostview.CountersAnswer, error) {
	if timeout <= 0 {
		timeout = CountersTimeout
	}
	if len(ports) == 0 || len(ports) > hostview.MaxCountersPorts {
		return nil, fmt.Errorf("%w: ask for 1 to %d ports, not %d", ErrBadCounters, hostview.MaxCountersPorts, len(ports))
	}
	want := map[string]bool{}
	for _, p := range ports {
		if p == "" || len(p) > 255 {
			return nil, fmt.Errorf("%w: port id %q is empty or too long", ErrBadCounters, p)
		}
		want[p] = true
	}
	ids := make([]string, 0, len(want))
	for p := range want {
		ids = append(ids, p)
	}
	sort.Strings(ids)
	if s.st != nil {
		if err := s.st.Read(ctx, func(tx *store.Tx) error {
			for _, id := range ids {
				p, err := tx.PortForStatus(ctx, id)
				if err != nil {
					return err
				}
				if p == nil || p.HostID != host {
					return fmt.Errorf("%w: port %s is not bound to host %s", ErrCountersForbidden, id, host)
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	req := hostview.CountersRequest{ID: hex.EncodeToString(b[:]), Ports: ids}
	w := &countersWait{host: host, ports: want, expires: time.Now().Add(countersTTL), done: make(chan struct{})}

	h := &s.ctr
	h.mu.Lock()
	if len(h.streams[host]) == 0 {
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: host %s", ErrHostNotConnected, host)
	}
	h.expire(time.Now())
	if len(h.pending) >= maxCountersPending {
		h.mu.Unlock()
		return nil, ErrCountersBusy
	}
	if h.pending == nil {
		h.pending = map[string]*countersWait{}
	}
	sent := 0
	for ch := range h.streams[host] {
		select {
		case ch <- req:
			sent++
		default: // that stream is backed up: another may carry it
		}
	}
	if sent == 0 {
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: the streams of host %s are backed up", ErrCountersBusy, host)
	}
	h.pending[req.ID] = w
	h.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
		return w.answer, nil
	case <-t.C:
		return nil, fmt.Errorf("%w (%s, host %s)", ErrCountersTimeout, timeout, host)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Answer records host's agent's answer to a counters request and wakes
// its waiter. A second answer to the same request (the agent got it on
// two streams) is ignored.
func (s *Server) Answer(host string, a hostview.CountersAnswer) error {
	if a.RequestID == "" || len(a.RequestID) > 64 {
		return fmt.Errorf("%w: request_id %q is empty or too long", ErrBadCounters, a.RequestID)
	}
	if len(a.Error) > 4096 {
		return fmt.Errorf("%w: error longer than 4096 bytes", ErrBadCounters)
	}
	if len(a.Ports) > hostview.MaxCountersPorts || len(a.Errors) > hostview.MaxCountersPorts {
		return fmt.Errorf("%w: at most %d ports", ErrBadCounters, hostview.MaxCountersPorts)
	}
	for p, rs := range a.Ports {
		if len(rs) > maxCountersRules {
			return fmt.Errorf("%w: port %s: %d rules, at most %d", ErrBadCounters, p, len(rs), maxCountersRules)
		}
		for i, r := range rs {
			if r.Chain == "" || r.Number < 1 || (r.Family != "IPv4" && r.Family != "IPv6") {
				return fmt.Errorf("%w: port %s, rule %d: want family IPv4 or IPv6, a chain and a rule_number from 1", ErrBadCounters, p, i)
			}
		}
	}
	for p, e := range a.Errors {
		if len(e) > 4096 {
			return fmt.Errorf("%w: port %s: error longer than 4096 bytes", ErrBadCounters, p)
		}
	}
	h := &s.ctr
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(time.Now())
	w := h.pending[a.RequestID]
	if w == nil {
		return fmt.Errorf("%w: %s", ErrUnknownCounters, a.RequestID)
	}
	if w.host != host {
		return fmt.Errorf("%w: request %s was not sent to host %s", ErrCountersForbidden, a.RequestID, host)
	}
	for _, m := range []map[string]bool{keys(a.Ports), keys(a.Errors)} {
		for p := range m {
			if !w.ports[p] {
				return fmt.Errorf("%w: port %s was not asked for", ErrBadCounters, p)
			}
		}
	}
	if w.answer != nil {
		return nil
	}
	if a.ReadAt.IsZero() {
		a.ReadAt = time.Now().UTC()
	}
	w.answer = &a
	close(w.done)
	return nil
}

func keys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
