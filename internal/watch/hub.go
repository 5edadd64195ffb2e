package watch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/store"
)

// hub wakes the streams when the change log moves: at once after a commit
// of this process (store.Changed), and by polling the latest revision for
// commits of other servers. It runs only while a stream is open.
type hub struct {
	st   *store.Store
	poll time.Duration
	log  *slog.Logger

	mu     sync.Mutex
	users  int
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}
	latest int64
}

func newHub(st *store.Store, poll time.Duration, log *slog.Logger) *hub {
	return &hub{st: st, poll: poll, log: log, wake: make(chan struct{})}
}

// subscribe keeps the hub running until release is called.
func (h *hub) subscribe() (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users++
	if h.users == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.done = cancel, make(chan struct{})
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

// wait returns a channel closed when the log's latest revision next moves.
func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wake
}

func (h *hub) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		committed := h.st.Changed()
		var rev int64
		err := h.st.Read(ctx, func(tx *store.Tx) error {
			var err error
			rev, err = tx.LatestRevision(ctx)
			return err
		})
		if err != nil && ctx.Err() == nil {
			h.log.Warn("watch: read the change log's latest revision", "err", err)
		}
		h.mu.Lock()
		if err == nil && rev != h.latest {
			h.latest = rev
			close(h.wake)
			h.wake = make(chan struct{})
		}
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-committed:
		case <-t.C:
		}
	}
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
