package watch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/store"
)

// ClientConfig configures an agent's side of the watch.
type ClientConfig struct {
	// URL is the server's root (http://host:9696), without /v2.0; several
	// replicas' roots, comma separated, are tried in turn after a lost
	// stream.
	URL  string
	Host string
	// Token is sent as X-Auth-Token (an agent token, or a Keystone token
	// of a service user); "" sends none (noauth).
	Token string
	// TokenFunc, when set, gives the token of each request instead of
	// Token: the agent re-reads its --token-file, so that a token renewed
	// there (a Keystone token expires) is used without a restart.
	TokenFunc  func() string
	HTTPClient *http.Client
	Logger     *slog.Logger
	// MinBackoff and MaxBackoff bound the delay between reconnects.
	MinBackoff, MaxBackoff time.Duration
}

// ClientStats counts what the stream brought.
type ClientStats struct {
	Connects, Snapshots, Resumes, Resyncs, Deltas, Bookmarks int
}

// Client follows one host's watch stream, keeps the host's view in memory
// by applying the deltas, and reports through the API. It is the agent's
// Feed when the agent talks to a server: Snapshot returns the view it
// holds (no request), Changed closes when a revision is applied.
type Client struct {
	cfg  ClientConfig
	urls []string // the servers (replicas), tried in turn
	http *http.Client
	log  *slog.Logger

	mu      sync.Mutex
	cur     int            // index into urls
	view    *hostview.View // nil until the first snapshot is complete
	resume  int64          // the revision to resume from: applied or bookmarked
	changed chan struct{}
	ready   chan struct{}
	stats   ClientStats
	// countersFn answers counters requests, at most len(countersSem) at
	// once (client_counters.go).
	countersFn  CountersFunc
	countersSem chan struct{}
}

// ParseServers splits an agent's --server (one server's root URL, or
// several replicas' comma separated) into the roots, without trailing
// slashes.
func ParseServers(s string) ([]string, error) {
	var urls []string
	for _, one := range strings.Split(s, ",") {
		one = strings.TrimRight(strings.TrimSpace(one), "/")
		u, err := url.Parse(one)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("server URL %q: want http://host:port or https://host:port (several: comma separated)", one)
		}
		urls = append(urls, one)
	}
	return urls, nil
}

// NewClient builds a client; Run follows the stream.
func NewClient(cfg ClientConfig) (*Client, error) {
	urls, err := ParseServers(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		return nil, errors.New("watch client: empty host name")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	return &Client{cfg: cfg, urls: urls, http: cfg.HTTPClient, log: cfg.Logger, changed: make(chan struct{}), ready: make(chan struct{})}, nil
}

func (c *Client) hostURL(suffix string) string {
	c.mu.Lock()
	base := c.urls[c.cur]
	c.mu.Unlock()
	return base + "/v2.0/moat/hosts/" + url.PathEscape(c.cfg.Host) + suffix
}

// rotate moves to the next server (replica) of the list, after a lost
// stream: the change log is shared, so the agent resumes there.
func (c *Client) rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = (c.cur + 1) % len(c.urls)
}

// Stats is what the stream has brought so far.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Run follows the stream until ctx ends, reconnecting with backoff and
// resuming from the last applied (or bookmarked) revision.
func (c *Client) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		got, err := c.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			backoff = 0 // it worked for a while: reconnect at once
		}
		if len(c.urls) > 1 {
			c.rotate()
		}
		backoff = min(max(backoff*2, c.cfg.MinBackoff), c.cfg.MaxBackoff)
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: agents do not reconnect in step
		c.log.Warn("watch stream lost, reconnecting", "err", err, "resume_from", c.resumeFrom(), "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (c *Client) resumeFrom() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view == nil {
		return 0
	}
	return c.resume
}

// follow reads one stream until it ends; got says whether it brought any
// event.
func (c *Client) follow(ctx context.Context) (got bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	from := c.resumeFrom()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.hostURL("/watch?revision="+strconv.FormatInt(from, 10)), nil)
	if err != nil {
		return false, err
	}
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return false, fmt.Errorf("watch %s: %s: %s", c.cfg.Host, resp.Status, bytes.TrimSpace(body))
	}
	c.mu.Lock()
	c.stats.Connects++
	c.mu.Unlock()
	// A server that says nothing for three bookmark intervals is gone
	// (a half-open connection): cut the stream and reconnect.
	silence := 3*DefaultBookmark + 5*time.Second
	if d, err := time.ParseDuration(resp.Header.Get(BookmarkHeader)); err == nil && d > 0 {
		silence = 3*d + time.Second
	}
	watchdog := time.AfterFunc(silence, func() { cancel(fmt.Errorf("no event for %s", silence)) })
	defer watchdog.Stop()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), hostview.MaxLineBytes)
	var pending *hostview.Delta
	pendingType := ""
	first := true
	for sc.Scan() {
		watchdog.Reset(silence)
		got = true
		var ev hostview.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return got, fmt.Errorf("bad event from the server: %w", err)
		}
		switch ev.Type {
		case hostview.EventSnapshot, hostview.EventDelta:
			if pending == nil || pendingType != ev.Type {
				pending, pendingType = &hostview.Delta{}, ev.Type
			}
			pending.Merge(&ev.Delta)
			if ev.More {
				continue
			}
			if err := c.apply(ev.Type, ev.Revision, pending, first); err != nil {
				return got, err
			}
			pending, first = nil, false
		case hostview.EventBookmark:
			c.mu.Lock()
			c.stats.Bookmarks++
			if c.view != nil && ev.Revision > c.resume {
				c.resume = ev.Revision
			}
			c.mu.Unlock()
		case hostview.EventResync:
			c.mu.Lock()
			c.stats.Resyncs++
			c.mu.Unlock()
			c.log.Warn("server says resync: a snapshot follows", "asked", from, "oldest", ev.OldestRevision, "reason", ev.Reason)
		case hostview.EventCounters:
			c.onCounters(ctx, ev.Counters)
		default:
			c.log.Debug("ignoring an unknown watch event", "type", ev.Type)
		}
	}
	if err := sc.Err(); err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return got, cause
		}
		return got, err
	}
	return got, io.ErrUnexpectedEOF
}

// apply installs a complete snapshot or delta.
func (c *Client) apply(typ string, rev int64, d *hostview.Delta, first bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch typ {
	case hostview.EventSnapshot:
		v := hostview.New(c.cfg.Host)
		v.Apply(d)
		v.Revision = rev
		if c.view == nil {
			close(c.ready)
		}
		c.view = v
		c.stats.Snapshots++
		c.log.Info("watch snapshot", "revision", rev, "ports", len(v.Ports), "groups", len(v.Groups))
	default:
		if c.view == nil {
			return fmt.Errorf("delta at revision %d before any snapshot", rev)
		}
		if rev < c.view.Revision {
			return fmt.Errorf("delta at revision %d after revision %d", rev, c.view.Revision)
		}
		c.view.Apply(d)
		c.view.Revision = rev
		c.stats.Deltas++
		if first {
			c.stats.Resumes++ // the stream began with a delta: resumed without a snapshot
		}
	}
	c.resume = rev
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

func (c *Client) auth(req *http.Request) {
	tok := c.cfg.Token
	if c.cfg.TokenFunc != nil {
		tok = c.cfg.TokenFunc()
	}
	if tok != "" {
		req.Header.Set("X-Auth-Token", tok)
	}
}

// Snapshot is the host's view as the agent compiles it; it waits for the
// first snapshot.
func (c *Client) Snapshot(ctx context.Context) (*store.HostSnapshot, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.view.Snapshot(), nil
}

// LatestRevision is the revision of the view held (0 before the first
// snapshot).
func (c *Client) LatestRevision(context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view == nil {
		return 0, nil
	}
	return c.view.Revision, nil
}

// Changed closes when the next revision is applied.
func (c *Client) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// SetPortStatus reports one port (Report reports many at once).
func (c *Client) SetPortStatus(ctx context.Context, portID, status, reason string) error {
	rev, _ := c.LatestRevision(ctx)
	return c.Report(ctx, hostview.Report{Revision: rev, Ports: []hostview.PortReport{{ID: portID, Status: status, Reason: reason}}})
}

// Report posts the agent's report: the revision its kernel enforces and
// the ports whose status changed.
func (c *Client) Report(ctx context.Context, r hostview.Report) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.hostURL("/report"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report %d port(s) at revision %d: %s: %s", len(r.Ports), r.Revision, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
