package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/store/pgtest"
)

// shortIntervals makes the sequencer's poll and election fast for a test.
func shortIntervals(t *testing.T) {
	t.Helper()
	p, e := pollInterval, electionInterval
	pollInterval, electionInterval = 50*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { pollInterval, electionInterval = p, e })
}

func changesSince(t *testing.T, s *Store, after int64) []Change {
	t.Helper()
	var out []Change
	err := s.Read(context.Background(), func(tx *Tx) error {
		var err error
		out, err = tx.ChangesSince(context.Background(), after, 10000)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSequenceRevisionsMissOutOfOrderCommits shows why PostgreSQL needs the
// sequencer: with revisions from the changes table's sequence (schema 3's
// logChange, safe only while every write transaction held one lock),
// transaction A takes revision 1, B takes 2 and commits first, a follower
// reads "revision > 0", sees 2 and moves on: A's revision 1, committed a
// moment later, is never read.
func TestSequenceRevisionsMissOutOfOrderCommits(t *testing.T) {
	ctx := context.Background()
	db := rawDB(t, pgtest.Start(t).NewDatabase(t))
	if _, err := db.ExecContext(ctx, `CREATE TABLE changes (revision BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, object_id TEXT NOT NULL,
		op TEXT NOT NULL, project_id TEXT NOT NULL, created_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO changes (kind, object_id, op, project_id, created_at) VALUES ('k', $1, 'create', 'p', 't')`
	a, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Rollback()
	if _, err := a.ExecContext(ctx, insert, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, insert, "b"); err != nil { // B: its own transaction, committed
		t.Fatal(err)
	}
	follow := func(after int64) (seen []string, last int64) {
		rows, err := db.QueryContext(ctx, `SELECT revision, object_id FROM changes WHERE revision > $1 ORDER BY revision`, after)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		last = after
		for rows.Next() {
			var id string
			if err := rows.Scan(&last, &id); err != nil {
				t.Fatal(err)
			}
			seen = append(seen, id)
		}
		return seen, last
	}
	seen, last := follow(0)
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	more, _ := follow(last)
	seen = append(seen, more...)
	if strings.Join(seen, ",") != "b" {
		t.Fatalf("the follower saw %v; the out-of-order miss did not happen as described", seen)
	}
}

// TestSequencerOutOfOrderCommits is the same schedule through two stores
// (two replicas) on one database: nothing is missed, and the revision order
// is the order the changes became visible.
func TestSequencerOutOfOrderCommits(t *testing.T) {
	shortIntervals(t)
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase(t)
	s1, s2 := openURL(t, url), openURL(t, url)
	logged, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	releaseA := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseA() // before the stores close, which waits for A
	done := make(chan error, 1)
	go func() {
		done <- s1.WriteConcurrent(ctx, func(tx *Tx) error {
			if err := tx.logChange(ctx, KindQuota, "a", OpUpdate, "p"); err != nil {
				return err
			}
			close(logged)
			<-release
			return nil
		})
	}()
	select {
	case <-logged:
	case err := <-done:
		t.Fatalf("transaction A ended before B began: %v", err)
	}
	if err := s2.WriteConcurrent(ctx, func(tx *Tx) error { return tx.logChange(ctx, KindQuota, "b", OpUpdate, "p") }); err != nil {
		t.Fatal(err)
	}
	if err := s2.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	first := changesSince(t, s2, 0)
	if len(first) != 1 || first[0].ObjectID != "b" || first[0].Revision != 1 {
		t.Fatalf("before A commits: %+v, want b at revision 1", first)
	}
	releaseA()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s2.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	second := changesSince(t, s2, 1)
	if len(second) != 1 || second[0].ObjectID != "a" || second[0].Revision != 2 {
		t.Fatalf("after A commits: %+v, want a at revision 2", second)
	}
}

// TestSequencerConcurrentReplicas: writers on two stores (replicas) of one
// database, committing after random delays, some concurrently and some
// serialised; a follower reading ChangesSince all along sees every change
// exactly once, with revisions 1, 2, 3... and never one of a writer's
// changes before an earlier one of the same writer. The background
// sequencer alone numbers them (nobody calls SyncChanges).
func TestSequencerConcurrentReplicas(t *testing.T) {
	shortIntervals(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The follower gives up 10 s after the last write committed.
	followCtx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	url := pgtest.Start(t).NewDatabase(t)
	replicas := []*Store{openURL(t, url), openURL(t, url)}
	follower := openURL(t, url)
	const writers, txPerWriter, changesPerTx = 8, 25, 3
	total := writers * txPerWriter * changesPerTx

	type seen struct {
		rev    int64
		writer int
		seq    int
	}
	var got []seen
	followErr := make(chan error, 1)
	go func() {
		var last int64
		for len(got) < total {
			var batch []Change
			err := follower.Read(followCtx, func(tx *Tx) error {
				var err error
				batch, err = tx.ChangesSince(followCtx, last, 37)
				return err
			})
			if err != nil {
				followErr <- fmt.Errorf("follower: %d of %d changes seen: %w", len(got), total, err)
				return
			}
			for _, c := range batch {
				if c.Revision != last+1 {
					followErr <- fmt.Errorf("revision %d after %d: a revision was skipped", c.Revision, last)
					return
				}
				last = c.Revision
				var w, q int
				if _, err := fmt.Sscanf(c.ObjectID, "w%d-%d", &w, &q); err != nil {
					followErr <- fmt.Errorf("change %+v: %v", c, err)
					return
				}
				got = append(got, seen{c.Revision, w, q})
			}
			if len(batch) == 0 {
				select {
				case <-followCtx.Done():
					followErr <- fmt.Errorf("follower: %d of %d changes seen: %w", len(got), total, followCtx.Err())
					return
				case <-time.After(time.Duration(rand.IntN(3)) * time.Millisecond):
				}
			}
		}
		followErr <- nil
	}()

	var wg sync.WaitGroup
	writeErr := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := replicas[w%2]
			for i := 0; i < txPerWriter; i++ {
				write := s.WriteConcurrent
				if i%5 == 4 {
					write = s.Write // serialised writes interleave too
				}
				delay := time.Duration(rand.IntN(4000)) * time.Microsecond
				err := write(ctx, func(tx *Tx) error {
					for j := 0; j < changesPerTx; j++ {
						if err := tx.logChange(ctx, KindQuota, fmt.Sprintf("w%d-%d", w, i*changesPerTx+j), OpUpdate, "p"); err != nil {
							return err
						}
						time.Sleep(delay / changesPerTx) // commit after a random delay
					}
					return nil
				})
				if err != nil {
					writeErr <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	time.AfterFunc(10*time.Second, stopFollowing)
	close(writeErr)
	for err := range writeErr {
		t.Fatal(err)
	}
	if err := <-followErr; err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	for _, c := range got {
		if c.seq != next[c.writer] {
			t.Fatalf("revision %d is writer %d's change %d, want its change %d (lost, repeated or out of order)", c.rev, c.writer, c.seq, next[c.writer])
		}
		next[c.writer]++
	}
	if more := changesSince(t, follower, int64(total)); len(more) != 0 {
		t.Fatalf("%d changes beyond the %d written", len(more), total)
	}
	leaders := 0
	for _, s := range append(replicas, follower) {
		if s.Sequencing() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d stores sequence, want exactly 1", leaders)
	}
}

// TestSequencerTakeover: when the store that sequences closes (a server
// that dies), another takes over and numbers what is pending.
func TestSequencerTakeover(t *testing.T) {
	shortIntervals(t)
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase(t)
	a, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitFor(t, "a store sequences", a.Sequencing)
	b := openURL(t, url)
	a.Close()
	waitFor(t, "the other store takes over", b.Sequencing)
	if err := b.Write(ctx, func(tx *Tx) error { return tx.logChange(ctx, KindQuota, "x", OpUpdate, "p") }); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rev, err := b.WaitRevision(wctx, 0)
	if err != nil || rev != 1 {
		t.Fatalf("WaitRevision: %d, %v; want 1", rev, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWaitRevision: a store waiting for a revision wakes when another
// store of the database (another process on SQLite, another replica on
// PostgreSQL) or itself writes, well before the safety poll on PostgreSQL.
func TestWaitRevision(t *testing.T) {
	onBothURLs(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		writer := openURL(t, url)
		waiter := openURL(t, url)
		short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := waiter.WaitRevision(short, 0)
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitRevision on an empty change log: %v, want a timeout", err)
		}
		for i := 1; i <= 3; i++ {
			w := writer
			if i == 3 {
				w = waiter // its own write
			}
			got := make(chan int64, 1)
			go func() {
				rev, err := waiter.WaitRevision(ctx, int64(i-1))
				if err != nil {
					t.Error(err)
				}
				got <- rev
			}()
			time.Sleep(20 * time.Millisecond)
			if err := w.Write(ctx, func(tx *Tx) error { return tx.logChange(ctx, KindQuota, "p", OpUpdate, "p") }); err != nil {
				t.Fatal(err)
			}
			if rev := <-got; rev != int64(i) {
				t.Fatalf("write %d: WaitRevision returned %d", i, rev)
			}
		}
	})
}

// TestConcurrentWriteRefusesOtherWrites: a WriteConcurrent transaction on
// PostgreSQL may only create rules; any other write fails it and leaves
// nothing behind.
func TestConcurrentWriteRefusesOtherWrites(t *testing.T) {
	ctx := context.Background()
	s := openURL(t, pgtest.Start(t).NewDatabase(t))
	err := s.WriteConcurrent(ctx, func(tx *Tx) error { return tx.SetQuota(ctx, "p", "security_group_rule", 5) })
	if err == nil || !strings.Contains(err.Error(), "not allowed in a concurrent write") {
		t.Fatalf("SetQuota in WriteConcurrent: %v", err)
	}
	var over map[string]int64
	s.Read(ctx, func(tx *Tx) (err error) { over, err = tx.QuotaOverrides(ctx, "p"); return err })
	if len(over) != 0 {
		t.Fatalf("the refused transaction left %v", over)
	}
	if err := s.Write(ctx, func(tx *Tx) error { return tx.SetQuota(ctx, "p", "security_group_rule", 5) }); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateChangeLogFromSchema3: a database written by schema 3's moat
// (revisions from the changes table's own sequence) upgrades to schema 4
// with its change log intact, and new changes continue after its last
// revision on both databases.
func TestMigrateChangeLogFromSchema3(t *testing.T) {
	onBothURLs(t, func(t *testing.T, url string) {
		shortIntervals(t)
		ctx := context.Background()
		all := migrations
		t.Cleanup(func() { migrations = all })
		migrations = all[:3]
		old := openURL(t, url)
		old.Close()
		migrations = all
		db := rawDB(t, url)
		for _, id := range []string{"old1", "old2", "old3"} { // as schema 3's logChange wrote them
			if _, err := db.ExecContext(ctx, rebindFor(url, `INSERT INTO changes (kind, object_id, op, project_id, created_at) VALUES ('quota', ?, 'update', 'p', '2026-01-01T00:00:00Z')`), id); err != nil {
				t.Fatal(err)
			}
		}
		up, err := Upgrade(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if up.From != 3 || up.To != SchemaVersion() {
			t.Fatalf("upgrade: %+v, want 3 -> %d", up, SchemaVersion())
		}
		s := openURL(t, url)
		if err := s.Write(ctx, func(tx *Tx) error { return tx.logChange(ctx, KindQuota, "new", OpUpdate, "p") }); err != nil {
			t.Fatal(err)
		}
		if err := s.SyncChanges(ctx); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i, c := range changesSince(t, s, 0) {
			if c.Revision != int64(i+1) {
				t.Fatalf("change %d has revision %d", i, c.Revision)
			}
			ids = append(ids, c.ObjectID)
		}
		if strings.Join(ids, ",") != "old1,old2,old3,new" {
			t.Fatalf("change log after the upgrade: %v", ids)
		}
		var latest int64
		s.Read(ctx, func(tx *Tx) (err error) { latest, err = tx.LatestRevision(ctx); return err })
		if latest != 4 {
			t.Fatalf("LatestRevision %d, want 4", latest)
		}
	})
}

func rebindFor(url, q string) string {
	if d, _ := Driver(url); d == "postgres" {
		return rebindDollar(q)
	}
	return q
}

// TestSequencerSurvivesKilledConnection: PostgreSQL ends the sequencer's
// session (pg_terminate_backend, as a failover or a network cut would):
// its lock is released, a store takes it again and changes committed
// before and after are numbered, none lost or repeated.
func TestSequencerSurvivesKilledConnection(t *testing.T) {
	shortIntervals(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := pgtest.Start(t).NewDatabase(t)
	a, b := openURL(t, url), openURL(t, url)
	waitFor(t, "a store sequences", func() bool { return a.Sequencing() || b.Sequencing() })
	write := func(s *Store, id string) {
		t.Helper()
		if err := s.Write(ctx, func(tx *Tx) error { return tx.logChange(ctx, KindQuota, id, OpUpdate, "p") }); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "before")
	db := rawDB(t, url)
	// The session holding the sequencer lock (classid/objid are the key's
	// high and low 32 bits).
	res, err := db.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 1`,
		uint32(uint64(seqLeaderKey)>>32), uint32(uint64(seqLeaderKey)&0xffffffff))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d sessions held the sequencer lock, want 1", n)
	}
	write(b, "after")
	if _, err := a.WaitRevision(ctx, 1); err != nil {
		t.Fatalf("no revision 2 after the sequencer's session was killed: %v", err)
	}
	var ids []string
	for i, c := range changesSince(t, a, 0) {
		if c.Revision != int64(i+1) {
			t.Fatalf("change %d has revision %d", i, c.Revision)
		}
		ids = append(ids, c.ObjectID)
	}
	if strings.Join(ids, ",") != "before,after" {
		t.Fatalf("change log %v, want before,after", ids)
	}
	waitFor(t, "a store sequences again", func() bool { return a.Sequencing() || b.Sequencing() })
}

// TestChangePropagatesAcrossReplicas measures, with the production
// intervals, how long a change committed through one store takes to wake
// a follower on another, when the writer's store sequences (an in-process
// wake-up) and when the follower's does (NOTIFY moat_pending): through the
// wake-ups, not the 500 ms polls, and within the watch's 1 s goal.
func TestChangePropagatesAcrossReplicas(t *testing.T) {
	for _, writerSequences := range []bool{true, false} {
		t.Run(fmt.Sprintf("writer sequences=%v", writerSequences), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			url := pgtest.Start(t).NewDatabase(t)
			first := openURL(t, url)
			waitFor(t, "a store sequences", first.Sequencing)
			second := openURL(t, url)
			writer, follower := first, second
			if !writerSequences {
				writer, follower = second, first
			}
			follower.Changed() // start its listener
			const n = 40
			var lat []time.Duration
			for i := 0; i < n; i++ {
				t0 := time.Now()
				if err := writer.Write(ctx, func(tx *Tx) error { return tx.logChange(ctx, KindQuota, "p", OpUpdate, "p") }); err != nil {
					t.Fatal(err)
				}
				if _, err := follower.WaitRevision(ctx, int64(i)); err != nil {
					t.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			p50, p99 := lat[n/2], lat[n*99/100]
			t.Logf("commit on one store -> follower on another woken: p50 %v, p99 %v", p50, p99)
			if p50 > 200*time.Millisecond || p99 > time.Second {
				t.Errorf("p50 %v, p99 %v: the wake-ups do not work, the follower waits for the polls", p50, p99)
			}
		})
	}
}
