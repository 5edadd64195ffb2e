package netlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/metrics"
)

// File appends events to a JSON-lines file.
type File struct {
	mu sync.Mutex
	f  *os.File
}

// OpenFile opens (creating it and its directory) the events file.
func OpenFile(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("log events file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log events file: %w", err)
	}
	return &File{f: f}, nil
}

// Write appends one event as a line.
func (f *File) Write(ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err = f.f.Write(append(b, '\n'))
	return err
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// EventsBody is the body of POST /v2.0/moat/hosts/{host}/log-events and of
// the answer to GET /v2.0/moat/log-events.
type EventsBody struct {
	Events []Event `json:"log_events"`
}

// MaxPost is the most events one POST carries.
const MaxPost = 500

// Poster sends events to the server in small batches, at most one POST a
// second; events beyond its bounded queue are counted and dropped (the
// file keeps them).
type Poster struct {
	urls   []string // one per server replica, tried in turn
	cur    int      // the replica that answered last (Run's goroutine only)
	token  func() string
	client *http.Client
	log    *slog.Logger
	ch     chan Event
}

// NewPoster posts to /v2.0/moat/hosts/{host}/log-events of servers (the
// roots of the agent's --server replicas, watch.ParseServers), tried in
// turn when one fails. token gives the X-Auth-Token of each request (""
// for none; nil: never any), asked every time so that a renewed token is
// used.
func NewPoster(servers []string, host string, token func() string, log *slog.Logger) *Poster {
	if log == nil {
		log = slog.Default()
	}
	if token == nil {
		token = func() string { return "" }
	}
	urls := make([]string, len(servers))
	for i, root := range servers {
		urls[i] = root + "/v2.0/moat/hosts/" + url.PathEscape(host) + "/log-events"
	}
	return &Poster{urls: urls, token: token,
		client: &http.Client{Timeout: 10 * time.Second}, log: log, ch: make(chan Event, 4*MaxPost)}
}

// Add queues an event (never blocks).
func (p *Poster) Add(ev Event) {
	select {
	case p.ch <- ev:
	default: // the server is behind: the file keeps the event
	}
}

// Run posts until ctx ends.
func (p *Poster) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var batch []Event
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-p.ch:
			if len(batch) < MaxPost {
				batch = append(batch, ev)
			}
		case <-tick.C:
			if len(batch) == 0 {
				continue
			}
			if err := p.post(ctx, batch); err != nil {
				p.log.Warn("post log events", "events", len(batch), "err", err)
			}
			batch = batch[:0]
		}
	}
}

// post sends evs to the replica that answered last, or to the next ones
// in turn if it fails.
func (p *Poster) post(ctx context.Context, evs []Event) error {
	if len(p.urls) == 0 {
		return errors.New("no server to post to")
	}
	b, err := json.Marshal(EventsBody{Events: evs})
	if err != nil {
		return err
	}
	for i := range p.urls {
		u := p.urls[(p.cur+i)%len(p.urls)]
		if err = p.postTo(ctx, u, b); err == nil {
			p.cur = (p.cur + i) % len(p.urls)
			return nil
		}
		err = fmt.Errorf("%s: %w", u, err)
	}
	return err
}

func (p *Poster) postTo(ctx context.Context, u string, b []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := p.token(); tok != "" {
		req.Header.Set("X-Auth-Token", tok)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// Emitter is where the reader's events go: the counter, the file, the
// server (nil parts are left out).
func Emitter(f *File, p *Poster, log *slog.Logger) func(Event) {
	return func(ev Event) {
		metrics.AgentLogEvents.WithLabelValues(ev.Verdict).Inc()
		if f != nil {
			if err := f.Write(ev); err != nil {
				log.Warn("write log event", "err", err)
			}
		}
		if p != nil {
			p.Add(ev)
		}
	}
}
