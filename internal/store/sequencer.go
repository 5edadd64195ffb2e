package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// On PostgreSQL, write transactions run concurrently and commit in any
// order, so a revision taken from a sequence inside the writer would be
// visible out of order: a follower reading "revision > N" could pass over
// a smaller revision whose transaction commits later. Instead a writer
// appends its changes to pending_changes (no revision), and one sequencer
// moves committed pending rows into changes, numbering them after
// change_sequence.last_revision, one batch per transaction. Batches run one
// at a time (seqBatchKey), each committed before the next starts, so the
// revisions become visible in the order they were assigned and with no
// gaps: a follower that has seen revision N sees every revision above N
// in later reads, none sooner than a smaller one. See docs/database.md.
//
// Which server sequences: the holder of the session advisory lock
// seqLeaderKey. Every writable store tries to take it every
// electionInterval; when the holder's session ends (the server dies, its
// connection breaks) PostgreSQL releases the lock and another takes over.
// The batch lock keeps batches serial even if two ever ran at once.
//
// Wake-ups: after its commits a writer's store wakes the sequencer in
// process when it is the sequencer's, else sends NOTIFY moat_pending
// (outside the writer's transaction, at most one per kickGap), which the
// sequencer LISTENs for on a second connection; it polls every
// pollInterval as a safety net. After a batch the sequencer
// sends NOTIFY moat_changes; every store's listener turns that (or its own
// poll finding a newer revision) into a close of Changed().
const (
	seqLeaderKey   int64 = 0x6d6f617473657100 // "moatseq\x00": the running sequencer's session lock
	seqBatchKey    int64 = 0x6d6f617473657101 // every batch transaction
	pendingChannel       = "moat_pending"
	changesChannel       = "moat_changes"
	sequenceBatch        = 1000
)

// Intervals of the background loops; variables so that tests can shorten them.
var (
	pollInterval     = 500 * time.Millisecond
	electionInterval = time.Second
	// batchGap is the least time between two batches of the sequencer:
	// under load every batch then carries the changes of many commits (a
	// batch costs a round trip and a transaction) for at most this much more latency.
	batchGap = 5 * time.Millisecond
	// kickGap is the least time between two NOTIFY moat_pending a store
	// sends: PostgreSQL's NOTIFY is costly (each is a transaction that
	// takes the notification queue's lock at commit and signals the
	// listeners), so the commits of a replica that does not sequence
	// share one wake-up per kickGap. The sequencer's own store wakes it
	// in process, without NOTIFY.
	kickGap = 10 * time.Millisecond
)

// sequenceSQL moves up to p_limit committed pending changes into the
// change log, numbered after change_sequence in pending id order (a
// transaction's own changes keep their order; a transaction that began
// after another committed has larger ids), and keeps the new last
// revision and how many it moved; nothing when nothing was pending.
const sequenceSQL = `WITH moved AS (
	DELETE FROM pending_changes WHERE id IN (SELECT id FROM pending_changes ORDER BY id LIMIT p_limit)
	RETURNING id, kind, object_id, op, project_id, created_at
), base AS (
	SELECT last_revision FROM change_sequence WHERE id = 1
), numbered AS (
	INSERT INTO changes (revision, kind, object_id, op, project_id, created_at)
	SELECT base.last_revision + row_number() OVER (ORDER BY moved.id),
		moved.kind, moved.object_id, moved.op, moved.project_id, moved.created_at
	FROM moved, base
	RETURNING revision
)
UPDATE change_sequence SET last_revision = last_revision + (SELECT COUNT(*) FROM numbered)
WHERE id = 1 AND EXISTS (SELECT 1 FROM numbered)
RETURNING last_revision, (SELECT COUNT(*) FROM numbered) INTO v_last, v_moved`

// sequenceFunction is one batch in one statement, so in one round trip
// run as its own transaction (five before: BEGIN, the batch lock, the
// move, the notify, COMMIT): the batch lock, then — in a statement of its
// own, so that it sees every commit before the lock — the move, then
// NOTIFY moat_changes with the new last revision. It returns no row when
// nothing was pending.
const sequenceFunction = `CREATE FUNCTION moat_sequence_changes(p_batch_key BIGINT, p_limit INTEGER, p_channel TEXT)
RETURNS TABLE (last_revision BIGINT, moved BIGINT) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_last BIGINT;
	v_moved BIGINT;
BEGIN
	PERFORM pg_advisory_xact_lock(p_batch_key);
	` + sequenceSQL + `;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM pg_notify(p_channel, v_last::TEXT);
	last_revision := v_last;
	moved := v_moved;
	RETURN NEXT;
END
$$`

// sequenceOnce runs one batch as its own transaction and returns how
// many changes it numbered and the last revision.
func sequenceOnce(ctx context.Context, conn *pgx.Conn) (int, int64, error) {
	var last int64
	var n int
	err := conn.QueryRow(ctx, `SELECT last_revision, moved FROM moat_sequence_changes($1, $2, $3)`,
		seqBatchKey, sequenceBatch, changesChannel).Scan(&last, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("number pending changes: %w", err)
	}
	return n, last, nil
}

// pgBackground is what a PostgreSQL store runs beside its pools.
type pgBackground struct {
	cfg    *pgx.ConnConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	kick       chan struct{} // a commit appended pending changes: NOTIFY the sequencer
	localKick  chan struct{} // the same, when this store is the sequencer
	listenOnce sync.Once

	mu     sync.Mutex
	leader bool // this store runs the sequencer now
}

func newPGBackground(cfg *pgx.ConnConfig) *pgBackground {
	ctx, cancel := context.WithCancel(context.Background())
	return &pgBackground{cfg: cfg, log: slog.Default().With("component", "changelog"), ctx: ctx, cancel: cancel,
		kick: make(chan struct{}, 1), localKick: make(chan struct{}, 1)}
}

func (b *pgBackground) stop() {
	b.cancel()
	b.wg.Wait()
}

func (b *pgBackground) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(cctx, b.cfg.Copy())
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
}

// sleep waits d or until the store closes; false when it closed.
func (b *pgBackground) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// startWriter starts what a writable store runs: the kicker and a
// candidate sequencer.
func (s *Store) startWriter() {
	b := s.pg
	b.wg.Add(2)
	go func() { defer b.wg.Done(); s.runKicker() }()
	go func() { defer b.wg.Done(); s.runSequencer() }()
}

// runKicker sends NOTIFY moat_pending after commits that appended pending
// changes: outside their transactions (a NOTIFY inside one would serialise
// the commits of every notifying transaction on PostgreSQL's notify queue
// lock), at most one in flight, so that a burst of commits costs one or
// two notifications.
func (s *Store) runKicker() {
	b := s.pg
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.kick:
		}
		if _, err := s.writer.ExecContext(b.ctx, `SELECT pg_notify($1, '')`, pendingChannel); err != nil && b.ctx.Err() == nil {
			b.log.Warn("wake the change log sequencer", "err", err)
		}
		if !b.sleep(kickGap) { // commits meanwhile share the next wake-up
			return
		}
	}
}

// kickSequencer is called after a commit that appended pending changes.
func (s *Store) kickSequencer() {
	ch := s.pg.kick
	if s.Sequencing() {
		ch = s.pg.localKick
	}
	select {
	case ch <- struct{}{}:
	default: // one is queued already
	}
}

// runSequencer competes for the sequencer lock and, while it holds it,
// numbers pending changes whenever woken and every pollInterval.
func (s *Store) runSequencer() {
	b := s.pg
	for b.ctx.Err() == nil {
		err := s.sequencerSession()
		if b.ctx.Err() != nil {
			return
		}
		b.log.Warn("change log sequencer session ended; retrying", "err", err)
		if !b.sleep(electionInterval) {
			return
		}
	}
}

func (s *Store) sequencerSession() error {
	b := s.pg
	conn, err := b.connect(b.ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer closeConn(conn)
	for {
		var got bool
		if err := conn.QueryRow(b.ctx, `SELECT pg_try_advisory_lock($1)`, seqLeaderKey).Scan(&got); err != nil {
			return fmt.Errorf("try the sequencer lock: %w", err)
		}
		if got {
			break
		}
		if !b.sleep(electionInterval) {
			return b.ctx.Err()
		}
	}
	// The batches run on this connection, which holds the lock; another
	// one LISTENs for the other stores' wake-ups meanwhile.
	sctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	lconn, err := b.connect(sctx)
	if err != nil {
		return fmt.Errorf("connect the wake-up listener: %w", err)
	}
	defer closeConn(lconn)
	if _, err := lconn.Exec(sctx, `LISTEN `+pendingChannel); err != nil {
		return fmt.Errorf("listen %s: %w", pendingChannel, err)
	}
	remote := make(chan struct{}, 1)
	listenErr := make(chan error, 1)
	go func() {
		for {
			if _, err := lconn.WaitForNotification(sctx); err != nil {
				listenErr <- err
				return
			}
			select {
			case remote <- struct{}{}:
			default:
			}
		}
	}()
	defer func() { cancel(); <-listenErr }() // before closeConn(lconn)
	b.setLeader(true)
	defer b.setLeader(false)
	b.log.Info("this server sequences the change log")
	poll := time.NewTimer(pollInterval)
	defer poll.Stop()
	for {
		for {
			n, _, err := sequenceOnce(b.ctx, conn)
			if err != nil {
				return err
			}
			if n > 0 {
				s.notify()
			}
			if n < sequenceBatch {
				break
			}
		}
		if !b.sleep(batchGap) { // let the next batch gather commits
			return b.ctx.Err()
		}
		poll.Reset(pollInterval)
		select {
		case <-b.ctx.Done():
			return b.ctx.Err()
		case err := <-listenErr:
			listenErr <- err // for the deferred wait
			return fmt.Errorf("wait for %s: %w", pendingChannel, err)
		case <-b.localKick:
		case <-remote:
		case <-poll.C:
		}
	}
}

func (b *pgBackground) setLeader(v bool) {
	b.mu.Lock()
	b.leader = v
	b.mu.Unlock()
}

// Sequencing reports whether this store runs the change log sequencer now
// (always false on SQLite, which needs none).
func (s *Store) Sequencing() bool {
	if s.pg == nil {
		return false
	}
	s.pg.mu.Lock()
	defer s.pg.mu.Unlock()
	return s.pg.leader
}

// SyncChanges numbers every change committed before it was called, so
// that they are in the change log when it returns: the writer that wants
// to read its own changes at once (tests, tools). Servers never need it:
// the sequencer numbers changes within milliseconds. On SQLite changes
// are numbered as they commit, and it does nothing.
func (s *Store) SyncChanges(ctx context.Context) error {
	if s.pg == nil || s.writer == nil {
		return nil
	}
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sync change log: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("sync change log: driver connection %T is not pgx", dc)
		}
		for {
			n, _, err := sequenceOnce(ctx, pc.Conn())
			if err != nil {
				return fmt.Errorf("sync change log: %w", err)
			}
			if n > 0 {
				s.notify()
			}
			if n < sequenceBatch {
				return nil
			}
		}
	})
}

// startListener starts, once, the loop that closes Changed() when the
// change log grows in any process: LISTEN moat_changes, and a poll of the
// latest revision every pollInterval in case a notification is lost (a
// broken connection, a sequencer that died between commit and notify).
func (s *Store) startListener() {
	b := s.pg
	b.listenOnce.Do(func() {
		if b.ctx.Err() != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for b.ctx.Err() == nil {
				err := s.listenSession()
				s.notify() // whatever was missed while disconnected
				if b.ctx.Err() != nil {
					return
				}
				b.log.Warn("change log listener session ended; reconnecting", "err", err)
				if !b.sleep(pollInterval) {
					return
				}
			}
		}()
	})
}

func (s *Store) listenSession() error {
	b := s.pg
	conn, err := b.connect(b.ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer closeConn(conn)
	if _, err := conn.Exec(b.ctx, `LISTEN `+changesChannel); err != nil {
		return fmt.Errorf("listen %s: %w", changesChannel, err)
	}
	latest := func() (int64, error) {
		var rev int64
		err := conn.QueryRow(b.ctx, `SELECT last_revision FROM change_sequence WHERE id = 1`).Scan(&rev)
		return rev, err
	}
	last, err := latest()
	if err != nil {
		return fmt.Errorf("read latest revision: %w", err)
	}
	s.notify()
	for {
		wctx, cancel := context.WithTimeout(b.ctx, pollInterval)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		switch {
		case err == nil:
			s.notify()
		case pgconn.Timeout(err):
			rev, err := latest()
			if err != nil {
				return fmt.Errorf("read latest revision: %w", err)
			}
			if rev != last {
				last = rev
				s.notify()
			}
		default:
			return fmt.Errorf("wait for %s: %w", changesChannel, err)
		}
	}
}

// WaitRevision blocks until the change log holds a revision above after
// and returns the latest revision, or returns ctx's error. It wakes on this
// process's commits (SQLite) or the sequencer's notifications (PostgreSQL,
// any server), and polls every pollInterval besides: a wake-up is only a
// hint, the change log is the truth.
func (s *Store) WaitRevision(ctx context.Context, after int64) (int64, error) {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	for {
		ch := s.Changed()
		var rev int64
		if err := s.Read(ctx, func(tx *Tx) error {
			var err error
			rev, err = tx.LatestRevision(ctx)
			return err
		}); err != nil {
			return 0, err
		}
		if rev > after {
			return rev, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		case <-t.C:
			t.Reset(pollInterval)
		}
	}
}
