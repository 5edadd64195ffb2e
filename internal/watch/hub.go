package watch

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/metrics"
	"github.com/moat-sg/moat/internal/store"
)

// hub follows the change log once for all streams of this server: it
// reads each new change once, looks up once what routing needs (the host
// of a changed port, the group of a changed rule), appends it to a chain
// of recent changes, and wakes the streams, each of which then walks the
// chain from its own position (Typha's snapcache). A stream too far
// behind for the chain reads the log itself. The hub wakes at once after
// a commit of this process (store.Changed) and polls the latest revision
// for commits of other servers. It runs only while a stream is open.
type hub struct {
	st    *store.Store
	poll  time.Duration
	log   *slog.Logger
	limit int // changes the chain keeps

	mu     sync.Mutex
	users  int
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}
	latest int64
	// chain holds the changes after from, oldest first; valid says it is
	// known to be complete (no change after from missing).
	chain []entry
	from  int64
	valid bool
}

// entry is a change with what routing needs to know about it.
type entry struct {
	store.Change
	portHost  string    // for a port created or updated: its host then ("" unbound or gone)
	ruleGroup string    // for a rule created or updated: its group then
	found     bool      // the object existed at look-up
	seen      time.Time // when the hub read it (≈ its commit, for this process's commits)
}

func newHub(st *store.Store, poll time.Duration, limit int, log *slog.Logger) *hub {
	return &hub{st: st, poll: poll, limit: limit, log: log, wake: make(chan struct{})}
}

// subscribe keeps the hub running until release is called.
func (h *hub) subscribe() (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users++
	if h.users == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.done = cancel, make(chan struct{})
		h.chain, h.valid = nil, false
		go h.run(ctx, h.done)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.users--
			var done chan struct{}
			if h.users == 0 {
				h.cancel()
				done = h.done
			}
			h.mu.Unlock()
			if done != nil {
				<-done
			}
		})
	}
}

// wait returns a channel closed when the chain next grows.
func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wake
}

// since returns the changes after rev (at most max) with their look-ups,
// when the hub read the oldest of them, and whether the chain could
// answer: false when rev is older than the chain holds, or newer than it
// knows (the stream reads the log itself).
func (h *hub) since(rev int64, max int) ([]store.Change, hostview.Lookup, time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.valid || rev < h.from || rev > h.latest {
		return nil, hostview.Lookup{}, time.Time{}, false
	}
	i := sort.Search(len(h.chain), func(i int) bool { return h.chain[i].Revision > rev })
	es := h.chain[i:min(len(h.chain), i+max)]
	var seen time.Time
	if len(es) > 0 {
		seen = es[0].seen
	}
	changes := make([]store.Change, len(es))
	l := hostview.Lookup{PortHost: map[string]string{}, RuleGroup: map[string]string{}}
	for j, e := range es {
		changes[j] = e.Change
		if !e.found {
			continue
		}
		switch e.Kind {
		case store.KindPort:
			l.PortHost[e.ObjectID] = e.portHost
		case store.KindSecurityGroupRule:
			l.RuleGroup[e.ObjectID] = e.ruleGroup
		}
	}
	return changes, l, seen, true
}

func (h *hub) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		committed := h.st.Changed()
		more, err := h.advance(ctx)
		if err != nil && ctx.Err() == nil {
			h.log.Warn("watch: follow the change log", "err", err)
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-committed:
		case <-t.C:
		}
	}
}

// advance appends what was committed since the chain's end and wakes the
// streams; more says a page was full.
func (h *hub) advance(ctx context.Context) (bool, error) {
	h.mu.Lock()
	valid, last := h.valid, h.latest
	h.mu.Unlock()
	const page = 2000
	var (
		changes []store.Change
		look    hostview.Lookup
		latest  int64
	)
	err := h.st.Read(ctx, func(tx *store.Tx) error {
		var err error
		if !valid {
			// Start at the present: streams behind it read the log.
			latest, err = tx.LatestRevision(ctx)
			return err
		}
		if changes, err = tx.ChangesSince(ctx, last, page); err != nil || len(changes) == 0 {
			return err
		}
		look, err = lookup(ctx, tx, changes)
		return err
	})
	if err != nil {
		return false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !valid {
		h.chain, h.from, h.latest, h.valid = nil, latest, latest, true
	} else if len(changes) == 0 {
		return false, nil
	}
	now := time.Now()
	for _, c := range changes {
		e := entry{Change: c, seen: now}
		switch c.Kind {
		case store.KindPort:
			e.portHost, e.found = look.PortHost[c.ObjectID]
		case store.KindSecurityGroupRule:
			e.ruleGroup, e.found = look.RuleGroup[c.ObjectID]
		}
		h.chain = append(h.chain, e)
	}
	if len(changes) > 0 {
		h.latest = changes[len(changes)-1].Revision
	}
	metrics.ChangeLogRevision.Set(float64(h.latest))
	if n := len(h.chain) - h.limit; n > 0 {
		h.from = h.chain[n-1].Revision
		h.chain = append(h.chain[:0:0], h.chain[n:]...)
	}
	close(h.wake)
	h.wake = make(chan struct{})
	return len(changes) == page, nil
}

// Compact deletes the changes older than retention (keeping the newest),
// and returns how many.
func (s *Server) Compact(ctx context.Context, retention time.Duration) (int64, error) {
	var n int64
	err := s.st.Write(ctx, func(tx *store.Tx) error {
		var err error
		n, err = tx.CompactChanges(ctx, time.Now().Add(-retention))
		return err
	})
	return n, err
}

// RunCompaction compacts the change log to retention every so often
// (a tenth of it, between a second and an hour) until ctx ends. Agents
// that were away longer than retention resync from a snapshot.
func (s *Server) RunCompaction(ctx context.Context, retention time.Duration) {
	every := min(max(retention/10, time.Second), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Compact(ctx, retention)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("compact the change log", "err", err)
		case n > 0:
			s.log.Info("compacted the change log", "deleted", n, "retention", retention)
		}
	}
}
