// Package watch is the server side of the agents' watch stream and
// reports (docs/agent.md has the protocol): each host's agent follows
// GET /v2.0/moat/hosts/{host}/watch, a snapshot of its view
// (internal/hostview) at a revision of the change log, then deltas in
// revision order, bookmarks as heartbeats, and a resync when it asks for a
// revision the log no longer holds.
//
// As in Calico Typha's snapcache, the change log is one chain every stream
// walks on its own: each stream has its own goroutine, reads the log from
// its own position, routes each change to its host (hostview.Route) and
// only then reads the host's state; a slow reader blocks only its own
// goroutine (its writes have a deadline, after which it is cut), holds no
// queue of undelivered deltas (when it can write again it sends one delta
// from its last view to the current state), and holds up nobody. A hub
// wakes the streams: at once after a commit of this process, and by
// polling the log's latest revision for commits of other servers on the
// same database.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/metrics"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// Config tunes the watch server.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger
	// Bookmark is how often an idle stream gets a bookmark (its heartbeat).
	Bookmark time.Duration
	// Poll is how often the change log's latest revision is read for
	// commits of other servers on the same database.
	Poll time.Duration
	// WriteTimeout cuts a stream whose frame cannot be written in time (a
	// reader that stopped reading).
	WriteTimeout time.Duration
	// FrameWeight bounds a frame (hostview.Delta.Weight).
	FrameWeight int
	// MaxChanges is how many changes a stream routes in one round; past
	// that it compares the host's whole state instead.
	MaxChanges int
	// ChainLength is how many recent changes the server keeps, routed, for
	// its streams to walk without reading the log.
	ChainLength int
}

// Defaults for Config's zero fields.
const (
	DefaultBookmark     = 10 * time.Second
	DefaultPoll         = time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultMaxChanges   = 20000
	DefaultChainLength  = 50000
)

// BookmarkHeader tells the agent the bookmark interval, so that it can
// tell a silent server from a quiet one.
const BookmarkHeader = "X-Moat-Bookmark-Interval"

// Server serves the watch streams and records the agents' reports.
type Server struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
	hub *hub

	mu    sync.Mutex
	hosts map[string]*hostState
	stats stats
	ctr   counterHub // counters requests (counters.go)

	closing   chan struct{}
	closeOnce sync.Once
}

// stats count the streams' rounds by where their changes came from.
type stats struct {
	fromChain, fromLog atomic.Int64
}

// Rounds reports how many stream rounds walked the shared chain and how
// many had to read the change log (for tests and benchmarks).
func (s *Server) Rounds() (fromChain, fromLog int64) {
	return s.stats.fromChain.Load(), s.stats.fromLog.Load()
}

// hostState is what this server knows of one host's agent.
type hostState struct {
	watches    int
	sent       int64 // revision last sent or bookmarked to it
	enforced   int64 // revision its last report said the kernel enforces
	reportedAt time.Time
	reads      int64 // whole host reads for its streams
	partReads  int64 // reads of only what changes needed
	// inflight are deltas sent but not yet reported enforced, oldest
	// first, for moat_change_enforced_seconds.
	inflight []inflight
}

// inflight is a delta sent to an agent: its revision, and when the hub
// read the oldest change it carries.
type inflight struct {
	rev  int64
	seen time.Time
}

// maxInflight bounds a host's inflight deltas (an agent that never
// reports must not grow them).
const maxInflight = 64

// New builds a watch server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Bookmark <= 0 {
		cfg.Bookmark = DefaultBookmark
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.FrameWeight <= 0 {
		cfg.FrameWeight = hostview.MaxFrameWeight
	}
	if cfg.MaxChanges <= 0 {
		cfg.MaxChanges = DefaultMaxChanges
	}
	if cfg.ChainLength <= 0 {
		cfg.ChainLength = DefaultChainLength
	}
	return &Server{cfg: cfg, st: cfg.Store, log: cfg.Logger, hub: newHub(cfg.Store, cfg.Poll, cfg.ChainLength, cfg.Logger),
		hosts: map[string]*hostState{}, closing: make(chan struct{})}
}

// Close ends every stream (their agents reconnect, to this server when it
// is back or to another); an HTTP server's graceful shutdown calls it
// (http.Server.RegisterOnShutdown), since streams are never idle. New
// streams end at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// Watch serves one host's stream until the client goes or a write fails.
// from is the revision the agent has applied (0, or hasFrom false: it has
// nothing and gets a snapshot).
func (s *Server) Watch(w http.ResponseWriter, r *http.Request, host string, from int64) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // the server closing ends the stream
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc := http.NewResponseController(w)
	// The stream outlives the server's read and write timeouts; each frame
	// gets its own write deadline instead.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	release := s.hub.subscribe()
	defer release()
	s.track(host, +1)
	defer s.track(host, -1)
	metrics.WatchStreams.Inc()
	defer metrics.WatchStreams.Dec()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(BookmarkHeader, s.cfg.Bookmark.String())
	w.WriteHeader(http.StatusOK)
	st := &stream{s: s, host: host, w: w, rc: rc, enc: json.NewEncoder(w), log: s.log.With("host", host)}
	st.counters = s.ctr.join(host)
	defer s.ctr.leave(host, st.counters)
	if err := st.run(ctx, from); err != nil && ctx.Err() == nil {
		st.log.Warn("watch stream ended", "revision", st.rev, "err", err)
	}
}

func (s *Server) track(host string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[host]
	if h == nil {
		h = &hostState{}
		s.hosts[host] = h
	}
	h.watches += d
	if h.watches == 0 {
		// No stream of this host here any more: its revision is not this
		// server's to report (the agent may follow another replica now).
		metrics.WatchStreamRevision.DeleteLabelValues(host)
	}
}

func (s *Server) sent(host string, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hosts[host]; h != nil {
		h.sent = rev
	}
}

// stream is one watch connection.
type stream struct {
	s    *Server
	host string
	w    http.ResponseWriter
	rc   *http.ResponseController
	enc  *json.Encoder
	log  *slog.Logger

	rev  int64          // the revision the agent has (sent or bookmarked)
	view *hostview.View // what the agent holds, nil until known
	// counters brings counters requests to send (counters.go).
	counters chan hostview.CountersRequest
}

func (st *stream) run(ctx context.Context, from int64) error {
	if err := st.start(ctx, from); err != nil {
		return err
	}
	bookmark := time.NewTicker(st.s.cfg.Bookmark)
	defer bookmark.Stop()
	for {
		wake := st.s.hub.wait()
		more, err := st.round(ctx)
		if err != nil {
			return err
		}
		if more {
			continue // a round was capped: go on at once
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-bookmark.C:
			if err := st.send(hostview.Event{Type: hostview.EventBookmark, Revision: st.rev}); err != nil {
				return err
			}
		case req := <-st.counters:
			if err := st.send(hostview.Event{Type: hostview.EventCounters, Counters: &req}); err != nil {
				return err
			}
		}
	}
}

// start sends a snapshot, or resumes from the agent's revision.
func (st *stream) start(ctx context.Context, from int64) error {
	if from <= 0 {
		return st.snapshot(ctx)
	}
	// A resume sends the changes since from and takes the rows as they
	// are now for the view the agent then holds. Rows changed by commits
	// the sequencer has not numbered yet (PostgreSQL) would be in that
	// view and not in the delta, and their change, numbered later, would
	// then look like nothing to this stream: the agent would miss it. So
	// the read is retried until no change is pending in its snapshot (the
	// sequencer numbers within milliseconds, or after a failover within a
	// second or two), and past resumeWait the agent gets a snapshot.
	deadline := time.Now().Add(resumeWait)
	for {
		var r resumeRead
		var pending int64
		err := st.s.st.Read(ctx, func(tx *store.Tx) error {
			var err error
			if pending, err = tx.PendingChanges(ctx); err != nil || pending > 0 {
				return err
			}
			r, err = st.readResume(ctx, tx, from)
			return err
		})
		if err != nil {
			return err
		}
		if pending == 0 {
			return st.finishResume(ctx, from, r)
		}
		if time.Now().After(deadline) {
			st.log.Info("changes still wait for the sequencer: sending a snapshot instead of resuming", "from", from, "pending", pending)
			return st.snapshot(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// resumeWait bounds how long a resume waits for pending changes to be
// numbered before it falls back to a snapshot.
const resumeWait = 3 * time.Second

// resumeRead is what a resume reads in one snapshot.
type resumeRead struct {
	changes        []store.Change
	capped         bool
	oldest, latest int64
	look           hostview.Lookup
	snap           *store.HostSnapshot
}

func (st *stream) readResume(ctx context.Context, tx *store.Tx, from int64) (resumeRead, error) {
	var r resumeRead
	var err error
	if r.changes, r.capped, err = readChanges(ctx, tx, from, st.s.cfg.MaxChanges); err != nil {
		return r, err
	}
	// Read after the changes: a compaction that deleted some of them
	// before they were read shows here.
	if r.oldest, err = tx.OldestRevision(ctx); err != nil {
		return r, err
	}
	if r.latest, err = tx.LatestRevision(ctx); err != nil {
		return r, err
	}
	if from+1 < r.oldest || from > r.latest || r.capped {
		return r, nil
	}
	if r.look, err = lookup(ctx, tx, r.changes); err != nil {
		return r, err
	}
	r.snap, err = st.read(ctx, tx)
	return r, err
}

// finishResume sends the resync, snapshot or delta a resume read calls for.
func (st *stream) finishResume(ctx context.Context, from int64, r resumeRead) error {
	switch {
	case from+1 < r.oldest:
		return st.resync(ctx, r.oldest, fmt.Sprintf("revision %d is older than the change log holds (from %d)", from, r.oldest))
	case from > r.latest:
		return st.resync(ctx, r.oldest, fmt.Sprintf("revision %d is newer than the change log's latest, %d", from, r.latest))
	case r.capped:
		// More than a round's worth to replay: a snapshot is cheaper.
		st.log.Info("agent far behind: sending a snapshot", "from", from, "changes_over", st.s.cfg.MaxChanges)
		return st.snapshot(ctx)
	}
	now := hostview.FromSnapshot(r.snap)
	rev := from
	if len(r.changes) > 0 {
		rev = r.changes[len(r.changes)-1].Revision
	}
	now.Revision = rev
	ch, _ := hostview.Route(nil, st.host, r.changes, r.look)
	d := hostview.Resume(now, ch)
	st.log.Info("agent resumed", "from", from, "revision", rev, "changes", len(r.changes))
	if err := st.frames(hostview.EventDelta, rev, d); err != nil {
		return err
	}
	st.view, st.rev = now, rev
	metrics.WatchResumes.Inc()
	metrics.WatchStreamRevision.WithLabelValues(st.host).Set(float64(rev))
	return nil
}

func (st *stream) resync(ctx context.Context, oldest int64, reason string) error {
	st.log.Info("agent must resync", "reason", reason)
	if err := st.send(hostview.Event{Type: hostview.EventResync, OldestRevision: oldest, Reason: reason}); err != nil {
		return err
	}
	return st.snapshot(ctx)
}

func (st *stream) snapshot(ctx context.Context) error {
	var snap *store.HostSnapshot
	if err := st.s.st.Read(ctx, func(tx *store.Tx) error {
		var err error
		snap, err = st.read(ctx, tx)
		return err
	}); err != nil {
		return err
	}
	v := hostview.FromSnapshot(snap)
	if err := st.frames(hostview.EventSnapshot, v.Revision, hostview.Diff(nil, v)); err != nil {
		return err
	}
	st.view, st.rev = v, v.Revision
	metrics.WatchSnapshots.Inc()
	metrics.WatchStreamRevision.WithLabelValues(st.host).Set(float64(st.rev))
	return nil
}

// round follows the change log from st.rev: routes what was committed
// since, and if any of it concerns the host, reads the host and sends what
// differs from the agent's view. It reports whether it stopped at
// MaxChanges with more to read.
func (st *stream) round(ctx context.Context) (bool, error) {
	max := st.s.cfg.MaxChanges
	changes, look, seen, fromChain := st.s.hub.since(st.rev, max+1)
	var (
		capped bool
		now    *hostview.View
		d      hostview.Delta
	)
	if fromChain {
		st.s.stats.fromChain.Add(1)
		if len(changes) == 0 {
			return false, nil
		}
		if capped = len(changes) > max; capped {
			changes = changes[:max]
		}
		ch, relevant := hostview.Route(st.view, st.host, changes, look)
		if !relevant && !capped {
			st.rev = changes[len(changes)-1].Revision // nothing here: no read at all
			metrics.WatchStreamRevision.WithLabelValues(st.host).Set(float64(st.rev))
			return false, nil
		}
		if err := st.s.st.Read(ctx, func(tx *store.Tx) error {
			var err error
			now, d, err = st.refresh(ctx, tx, ch, capped)
			return err
		}); err != nil {
			return false, err
		}
		if err := st.update(changes[len(changes)-1].Revision, now, d); err != nil {
			return false, err
		}
		if !d.Empty() {
			st.s.sentDelta(st.host, st.rev, seen)
		}
		return capped, nil
	}
	st.s.stats.fromLog.Add(1)
	err := st.s.st.Read(ctx, func(tx *store.Tx) error {
		var err error
		if changes, capped, err = readChanges(ctx, tx, st.rev, max); err != nil || len(changes) == 0 {
			return err
		}
		var ch hostview.Changed
		relevant := capped // too many to route one by one: compare the whole host
		if !relevant {
			look, err := lookup(ctx, tx, changes)
			if err != nil {
				return err
			}
			ch, relevant = hostview.Route(st.view, st.host, changes, look)
		}
		if relevant {
			now, d, err = st.refresh(ctx, tx, ch, capped)
		}
		return err
	})
	if err != nil || len(changes) == 0 {
		return false, err
	}
	return capped, st.update(changes[len(changes)-1].Revision, now, d)
}

// refresh reads what the routed changes ch need — only the changed
// objects and what they bring (store.HostPart, hostview.Patch) — and
// returns the host's new view with the delta from the agent's. It reads
// and compares the whole host instead when full is set (a capped round),
// or when a port, network or group involved does not read in full (their
// errors reach ports the part does not hold).
func (st *stream) refresh(ctx context.Context, tx *store.Tx, ch hostview.Changed, full bool) (*hostview.View, hostview.Delta, error) {
	if !full && !st.view.HasUnreadable() {
		want := hostview.Want(ch)
		st.count(func(h *hostState) { h.partReads++ })
		part, err := tx.HostPart(ctx, st.host, want)
		if err != nil {
			return nil, hostview.Delta{}, err
		}
		if len(part.PortErrors) == 0 && len(part.BadRows) == 0 {
			now, d := hostview.Patch(st.view, hostview.FromSnapshot(part), ch)
			return now, d, nil
		}
	}
	snap, err := st.read(ctx, tx)
	if err != nil {
		return nil, hostview.Delta{}, err
	}
	now := hostview.FromSnapshot(snap)
	return now, hostview.Diff(st.view, now), nil
}

// update moves the stream to rev: with now (the host's new view), it
// sends d, what differs from the agent's view.
func (st *stream) update(rev int64, now *hostview.View, d hostview.Delta) error {
	if now != nil {
		now.Revision = rev
		if !d.Empty() {
			if err := st.frames(hostview.EventDelta, rev, d); err != nil {
				return err
			}
		}
		st.view = now
	}
	st.rev = rev
	metrics.WatchStreamRevision.WithLabelValues(st.host).Set(float64(rev))
	return nil
}

func (st *stream) count(fn func(h *hostState)) {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	if h := st.s.hosts[st.host]; h != nil {
		fn(h)
	}
}

// read reads the host's state, and counts it.
func (st *stream) read(ctx context.Context, tx *store.Tx) (*store.HostSnapshot, error) {
	st.count(func(h *hostState) { h.reads++ })
	return tx.HostSnapshot(ctx, st.host)
}

// readChanges reads up to max changes after rev, and whether there are more.
func readChanges(ctx context.Context, tx *store.Tx, rev int64, max int) ([]store.Change, bool, error) {
	const page = 1000
	var out []store.Change
	for {
		n := min(page, max-len(out))
		cs, err := tx.ChangesSince(ctx, rev, n)
		if err != nil {
			return nil, false, err
		}
		out = append(out, cs...)
		if len(cs) < n {
			return out, false, nil
		}
		rev = cs[len(cs)-1].Revision
		if len(out) >= max {
			more, err := tx.ChangesSince(ctx, rev, 1)
			if err != nil {
				return nil, false, err
			}
			return out, len(more) > 0, nil
		}
	}
}

// lookup reads what routing needs: the hosts of changed ports and the
// groups of changed rules.
func lookup(ctx context.Context, tx *store.Tx, changes []store.Change) (hostview.Lookup, error) {
	ports, rules := hostview.Needs(changes)
	var l hostview.Lookup
	var err error
	if l.PortHost, err = tx.PortHosts(ctx, ports); err != nil {
		return l, err
	}
	l.RuleGroup, err = tx.RuleGroups(ctx, rules)
	return l, err
}

// frames sends d as bounded frames of one revision.
func (st *stream) frames(typ string, rev int64, d hostview.Delta) error {
	parts := hostview.Split(d, st.s.cfg.FrameWeight)
	for i, f := range parts {
		if err := st.write(hostview.Event{Type: typ, Revision: rev, More: i < len(parts)-1, Delta: f}); err != nil {
			return err
		}
	}
	return st.flush(rev)
}

func (st *stream) send(ev hostview.Event) error {
	if err := st.write(ev); err != nil {
		return err
	}
	return st.flush(ev.Revision)
}

func (st *stream) write(ev hostview.Event) error {
	if err := st.rc.SetWriteDeadline(time.Now().Add(st.s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if err := st.enc.Encode(ev); err != nil {
		return fmt.Errorf("write %s at revision %d (reader too slow or gone): %w", ev.Type, ev.Revision, err)
	}
	return nil
}

func (st *stream) flush(rev int64) error {
	if err := st.rc.Flush(); err != nil {
		return fmt.Errorf("flush at revision %d: %w", rev, err)
	}
	if rev > 0 {
		st.s.sent(st.host, rev)
	}
	return nil
}

// ErrForbiddenPorts is a report naming ports bound to another host.
var ErrForbiddenPorts = errors.New("ports bound to another host")

// ErrBadReport is a report that does not validate.
var ErrBadReport = errors.New("bad report")

// maxReportPorts bounds one report (an agent sends at most its host's ports).
const maxReportPorts = 20000

// Report records an agent's report for host: the revision its kernel
// enforces, and its ports' statuses. Ports that are gone are skipped; a
// port bound to another host fails the whole report (ErrForbiddenPorts).
// Statuses are recorded without a change-log entry, so a report wakes no
// stream.
func (s *Server) Report(ctx context.Context, host string, rep hostview.Report) error {
	if rep.Revision < 0 {
		return fmt.Errorf("%w: revision %d is negative", ErrBadReport, rep.Revision)
	}
	if len(rep.Ports) > maxReportPorts {
		return fmt.Errorf("%w: %d ports, at most %d", ErrBadReport, len(rep.Ports), maxReportPorts)
	}
	for _, p := range rep.Ports {
		switch p.Status {
		case neutron.PortStatusActive, neutron.PortStatusDown:
			if p.Reason != "" {
				return fmt.Errorf("%w: port %s: a reason is for status ERROR only", ErrBadReport, p.ID)
			}
		case neutron.PortStatusError:
		default:
			return fmt.Errorf("%w: port %s: status %q (want ACTIVE, DOWN or ERROR)", ErrBadReport, p.ID, p.Status)
		}
		if p.ID == "" || len(p.ID) > 255 || len(p.Reason) > 4096 {
			return fmt.Errorf("%w: port id %q or its reason is empty or too long", ErrBadReport, p.ID)
		}
	}
	if len(rep.Ports) > 0 {
		err := s.st.Write(ctx, func(tx *store.Tx) error {
			var foreign []string
			for _, r := range rep.Ports {
				p, err := tx.PortForStatus(ctx, r.ID)
				if err != nil {
					return err
				}
				if p == nil {
					continue // deleted since the agent saw it
				}
				if p.HostID != host {
					foreign = append(foreign, r.ID)
					continue
				}
				if err := tx.RecordAgentStatus(ctx, p, r.Status, r.Reason); err != nil {
					return err
				}
			}
			if len(foreign) > 0 {
				return fmt.Errorf("%w: %v are not bound to %s", ErrForbiddenPorts, foreign, host)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[host]
	if h == nil {
		h = &hostState{}
		s.hosts[host] = h
	}
	h.enforced, h.reportedAt = rep.Revision, time.Now().UTC()
	n := 0
	for _, f := range h.inflight {
		if f.rev > rep.Revision {
			break
		}
		metrics.ChangeEnforced.Observe(h.reportedAt.Sub(f.seen).Seconds())
		n++
	}
	h.inflight = h.inflight[n:]
	return nil
}

// sentDelta records a delta at rev sent to host, carrying changes the hub
// read at seen (only deltas from the hub's chain: a stream reading the log
// is behind, and its latency is the catch-up, not the change's).
func (s *Server) sentDelta(host string, rev int64, seen time.Time) {
	if seen.IsZero() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[host]
	if h == nil {
		return
	}
	if len(h.inflight) >= maxInflight {
		h.inflight = h.inflight[1:]
	}
	h.inflight = append(h.inflight, inflight{rev, seen})
}

// HostStatus is what this server knows of a host's agent.
type HostStatus struct {
	Host string `json:"host"`
	// Watches is the number of streams this server serves the host.
	Watches int `json:"watches"`
	// SentRevision is the revision this server last sent or bookmarked.
	SentRevision int64 `json:"sent_revision"`
	// EnforcedRevision is the revision the agent last reported its kernel
	// enforces, at ReportedAt (zero: no report to this server).
	EnforcedRevision int64      `json:"enforced_revision"`
	ReportedAt       *time.Time `json:"reported_at"`
	// Reads counts the times this server read the host's whole state for
	// its streams (a snapshot, a resume, a round too big to route), and
	// PartReads the times it read only what changes needed.
	Reads     int64 `json:"state_reads"`
	PartReads int64 `json:"part_reads"`
}

// Host is what this server knows of host's agent.
func (s *Server) Host(host string) HostStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := HostStatus{Host: host}
	if h := s.hosts[host]; h != nil {
		out.Watches, out.SentRevision, out.EnforcedRevision = h.watches, h.sent, h.enforced
		out.Reads, out.PartReads = h.reads, h.partReads
		if !h.reportedAt.IsZero() {
			t := h.reportedAt
			out.ReportedAt = &t
		}
	}
	return out
}

// ParseRevision reads the watch's ?revision= (absent: 0).
func ParseRevision(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("revision %q is not a revision of the change log (a number, 0 or more)", s)
	}
	return n, nil
}
