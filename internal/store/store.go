// Package store keeps moat's state in SQL: embedded SQLite (pure Go, no
// cgo) by default, PostgreSQL with the same code and another driver. Every
// write runs in one transaction that also appends to the change log, the
// ordered feed host agents follow.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
)

// DefaultURL is where moat keeps its database when --db is not given.
const DefaultURL = "sqlite:///var/lib/moat/moat.db"

// Store is an open database.
type Store struct {
	d dialect
	// writer runs write transactions; for SQLite they begin IMMEDIATE and
	// writeMu queues them in Go, so that concurrent writers wait their turn
	// instead of failing with "database is locked". It is nil in a store
	// opened ReadOnly.
	writer  *sql.DB
	writeMu sync.Mutex
	// reader serves read transactions concurrently (SQLite WAL readers do
	// not block the writer).
	reader *sql.DB
	now    func() time.Time

	// Prepared statements by query text, per pool: SQLite spends more
	// time preparing a statement than running it.
	writerStmts, readerStmts stmtCache

	// changed is closed (and replaced) when the change log may have
	// grown: on SQLite after every committed write of this process, on
	// PostgreSQL when a sequencer (of any server) numbered changes.
	mu      sync.Mutex
	changed chan struct{}

	// pg runs the change log's sequencer and listener (PostgreSQL only).
	pg *pgBackground
}

// Changed returns a channel that is closed when the change log may have
// grown: on SQLite when the next write transaction of this process
// commits (writers in other processes are not seen: poll LatestRevision
// too), on PostgreSQL when the sequencer numbers new changes, whichever
// server wrote them. It is a wake-up, not a promise: read the change log
// to see what changed (WaitRevision does both, and polls).
func (s *Store) Changed() <-chan struct{} {
	if s.pg != nil {
		s.startListener()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *Store) notify() {
	s.mu.Lock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	s.mu.Unlock()
}

// Mode is what an opener may do to the database.
type Mode int

const (
	// Migrate creates the database if it is missing and upgrades its
	// schema to this moat's, under the migration lock: `moat db upgrade`,
	// and `moat server` / `moat allinone` on SQLite by default.
	Migrate Mode = iota
	// Existing opens a database that exists at this moat's schema version
	// for reads and writes, and never creates or migrates it: a server
	// whose operator upgrades the schema with `moat db upgrade`, and the
	// agent (which writes only port statuses).
	Existing
	// ReadOnly opens a database that exists at this moat's schema version
	// for reads only: every write fails, in moat (ErrReadOnly) and in the
	// database (SQLite mode=ro, PostgreSQL default_transaction_read_only).
	// The tools (moat trace and explain with --db) open it so.
	ReadOnly
)

func (m Mode) String() string {
	switch m {
	case Migrate:
		return "migrate"
	case Existing:
		return "existing"
	case ReadOnly:
		return "read-only"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ErrReadOnly is what Write returns on a store opened ReadOnly.
var ErrReadOnly = errors.New("the database is open read-only")

// ErrNoDatabase is returned (wrapped) when a mode that never creates the
// database finds no SQLite file.
var ErrNoDatabase = errors.New("the database does not exist")

// Open opens (creating if needed) the database at url and migrates its
// schema to the latest version: OpenMode with Migrate. Accepted forms:
// sqlite:///abs/path.db, sqlite://relative/path.db (either with
// ?synchronous=normal to trade durability on power loss for speed),
// postgres://... and postgresql://....
func Open(ctx context.Context, rawURL string) (*Store, error) {
	s, _, err := openMigrated(ctx, rawURL)
	return s, err
}

// OpenMode opens the database at url as mode allows. Whatever the mode, a
// database whose schema is newer than this moat's is refused with a
// *SchemaError: moat never runs on a schema it does not know.
func OpenMode(ctx context.Context, rawURL string, mode Mode) (*Store, error) {
	if mode == Migrate {
		return Open(ctx, rawURL)
	}
	s, err := openConn(rawURL, mode)
	if err != nil {
		return nil, err
	}
	v, err := s.schemaVersion(ctx)
	if err == nil {
		err = checkSchema(v)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.start()
	return s, nil
}

// start runs the background work of a store whose schema is this moat's:
// on PostgreSQL the change log's kicker and a candidate sequencer.
func (s *Store) start() {
	if s.pg != nil && s.writer != nil {
		s.startWriter()
	}
}

// Driver names the database kind of a URL: "sqlite" or "postgres".
func Driver(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	switch u.Scheme {
	case "sqlite", "sqlite3":
		return "sqlite", nil
	case "postgres", "postgresql":
		return "postgres", nil
	}
	return "", fmt.Errorf("database URL %q: unsupported scheme %q (want sqlite:///path or postgres://)", Redact(rawURL), u.Scheme)
}

// Redact returns url with its password, if any, replaced: for logs and
// messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

// openMigrated opens in Migrate mode and returns the versions this call
// applied.
func openMigrated(ctx context.Context, rawURL string) (*Store, []int, error) {
	s, err := openConn(rawURL, Migrate)
	if err != nil {
		return nil, nil, err
	}
	applied, err := s.migrate(ctx)
	if err != nil {
		s.Close()
		return nil, applied, err
	}
	s.start()
	return s, applied, nil
}

// openConn connects as mode allows, without looking at the schema.
func openConn(rawURL string, mode Mode) (*Store, error) {
	driver, err := Driver(rawURL)
	if err != nil {
		return nil, err
	}
	var s *Store
	if driver == "sqlite" {
		u, _ := url.Parse(rawURL) // Driver parsed it
		if strings.Contains(rawURL, "#") {
			// A '#' starts a URL fragment: the path would silently end
			// before it and name another file.
			return nil, fmt.Errorf("sqlite URL %q: a '#' in the path must be written %%23", rawURL)
		}
		s, err = openSQLite(u, mode)
	} else {
		s, err = openPostgres(rawURL, mode)
	}
	if err != nil {
		return nil, err
	}
	s.now = func() time.Time { return time.Now().UTC().Truncate(time.Second) }
	return s, nil
}

// sqliteSynchronousOf reads the sqlite URL's parameters: only
// synchronous=full|normal (default full), as SQLite's pragma value.
func sqliteSynchronousOf(q url.Values) (string, error) {
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if k != "synchronous" {
			return "", fmt.Errorf("sqlite URL: unknown parameter %q (the only one is synchronous=full|normal)", k)
		}
	}
	switch vs := q["synchronous"]; {
	case len(vs) == 0:
		return "FULL", nil
	case len(vs) == 1 && strings.EqualFold(vs[0], "full"):
		return "FULL", nil
	case len(vs) == 1 && strings.EqualFold(vs[0], "normal"):
		return "NORMAL", nil
	default:
		return "", fmt.Errorf("sqlite URL: synchronous=%s: want full or normal", strings.Join(vs, ","))
	}
}

func openSQLite(u *url.URL, mode Mode) (*Store, error) {
	path := u.Path
	if u.Host != "" { // sqlite://relative/path.db
		path = u.Host + u.Path
	}
	if path == "" {
		return nil, errors.New("sqlite URL needs a file path, e.g. sqlite:///var/lib/moat/moat.db")
	}
	// synchronous=FULL (the default) syncs the WAL on every commit, so an
	// acknowledged write survives a power loss: a rule deletion the API
	// answered 204 for cannot come back. NORMAL survives a crash of moat
	// (kill -9) but may lose the last commits on power loss, for fewer
	// fsyncs; sqlite:///path.db?synchronous=normal opts in.
	synchronous, err := sqliteSynchronousOf(u.Query())
	if err != nil {
		return nil, err
	}
	if mode == Migrate {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
	} else if _, err := os.Stat(path); err != nil {
		// SQLite would create an empty file; the modes that never
		// create say so instead.
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sqlite %s: %w (moat server creates it, or run moat db upgrade)", path, ErrNoDatabase)
		}
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if mode == ReadOnly {
		// mode=ro: SQLite refuses every write and never creates the file;
		// query_only on top. No journal_mode: switching a database to WAL
		// is a write (the server that created it did so).
		reader, err := sql.Open("sqlite", "file:"+sqliteURIPath(path)+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=query_only(1)")
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		reader.SetMaxOpenConns(maxSQLiteReaders)
		if err := reader.Ping(); err != nil {
			reader.Close()
			return nil, fmt.Errorf("open sqlite %s read-only: %w", path, err)
		}
		return &Store{d: sqliteDialect{}, reader: reader}, nil
	}
	// mode=rw opens without creating: the file was there a moment ago,
	// and one deleted since is an error, not a fresh empty database.
	open := "rwc"
	if mode != Migrate {
		open = "rw"
	}
	// The driver runs these pragmas on every connection it opens, so they
	// hold for each connection of both pools.
	pragmas := "mode=" + open + "&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(" + synchronous + ")"
	writer, err := sql.Open("sqlite", "file:"+sqliteURIPath(path)+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Writes are serialised in Write; the second connection lets a
	// statement be prepared while a write transaction holds the first.
	writer.SetMaxOpenConns(maxSQLiteWriters)
	if err := pingSQLite(writer); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	reader, err := sql.Open("sqlite", "file:"+sqliteURIPath(path)+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	reader.SetMaxOpenConns(maxSQLiteReaders)
	return &Store{d: sqliteDialect{}, writer: writer, reader: reader}, nil
}

// pingSQLite opens the first connection, retrying while the database is
// busy: switching a new database to WAL (the connection's pragmas) takes
// an exclusive lock and SQLite answers SQLITE_BUSY at once, without its
// busy handler, when another process is doing the same — several servers
// or `moat db upgrade` starting together on a fresh file. Bounded like
// busy_timeout (10 s).
func pingSQLite(db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	wait := 5 * time.Millisecond
	for {
		err := db.Ping()
		if err == nil || !sqliteBusy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// sqliteBusy reports SQLITE_BUSY and SQLITE_LOCKED (and their extended
// codes).
func sqliteBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == 5 || c == 6
}

// The pools' sizes: WAL readers run concurrently, writers one at a time.
const (
	maxSQLiteWriters = 2
	maxSQLiteReaders = 8
)

// Close releases the database.
func (s *Store) Close() error {
	if s.pg != nil {
		s.pg.stop()
	}
	s.writerStmts.close()
	s.readerStmts.close()
	var err error
	if s.writer != nil {
		err = s.writer.Close()
	}
	if s.reader != s.writer {
		if e := s.reader.Close(); err == nil {
			err = e
		}
	}
	return err
}

// Write runs fn in one read-write transaction and commits it if fn returns
// nil. Changes fn records are appended to the change log in the same
// transaction. Write transactions are serialised: on SQLite by the one
// writer, on PostgreSQL by an exclusive advisory lock, so fn may read,
// decide and write as if it were alone (a duplicate or quota check holds).
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	return s.write(ctx, false, fn)
}

// WriteConcurrent runs fn like Write, but on PostgreSQL concurrently with
// other WriteConcurrent transactions (never with a Write): fn may only
// create security group rules (Tx.CreateRules, with the reads that decide
// it: groups, quotas, Tx.CountRules, Tx.RuleWithKey), and the store takes
// the narrower locks that keep those decisions true (see lockKey); any
// other write fails the transaction. fn may run more than once: a
// transaction PostgreSQL aborts as a deadlock victim is retried. On SQLite
// it is Write.
func (s *Store) WriteConcurrent(ctx context.Context, fn func(*Tx) error) error {
	if s.d.name() != "postgres" {
		return s.write(ctx, false, fn)
	}
	for attempt := 1; ; attempt++ {
		err := s.write(ctx, true, fn)
		if err == nil || attempt == maxConcurrentAttempts || !isDeadlock(err) {
			return err
		}
	}
}

const maxConcurrentAttempts = 5

func (s *Store) write(ctx context.Context, concurrent bool, fn func(*Tx) error) error {
	if s.writer == nil {
		return ErrReadOnly
	}
	if s.d.name() == "sqlite" {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	sqlTx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	tx := &Tx{tx: sqlTx, d: s.d, now: s.now(), write: true, concurrent: concurrent, stmts: &s.writerStmts, db: s.writer}
	if err := s.d.lockWrites(ctx, sqlTx, concurrent); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := fn(tx); err != nil {
		sqlTx.Rollback()
		return err
	}
	if tx.forbidden != nil {
		sqlTx.Rollback()
		return tx.forbidden
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if s.pg == nil {
		s.notify()
	} else if tx.logged {
		s.kickSequencer()
	}
	return nil
}

// Read runs fn in a read-only transaction: a consistent snapshot.
func (s *Store) Read(ctx context.Context, fn func(*Tx) error) error {
	opts := &sql.TxOptions{}
	if s.d.name() == "postgres" {
		// REPEATABLE READ: every statement sees the snapshot of the first,
		// so a host snapshot's revision and its rows agree even while the
		// sequencer and other servers commit (READ COMMITTED, the default,
		// takes a new snapshot per statement). Read-only, it never fails
		// to serialise.
		opts = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	sqlTx, err := s.reader.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	defer sqlTx.Rollback()
	return fn(&Tx{tx: sqlTx, d: s.d, now: s.now(), stmts: &s.readerStmts, db: s.reader})
}

// Tx is one transaction. Its methods are the only way moat reads and
// writes state.
type Tx struct {
	tx    *sql.Tx
	d     dialect
	now   time.Time
	write bool
	// concurrent: a WriteConcurrent transaction on PostgreSQL, which may
	// run only the statements concurrentWrites allows and takes keyed
	// locks; forbidden is the first statement it refused.
	concurrent bool
	forbidden  error
	locked     map[string]bool
	// logged: the transaction appended to the change log.
	logged bool
	// groupAttrs are the standard attribute ids of the groups read.
	groupAttrs map[string]int64
	// bumped remembers revisions already bumped in this transaction:
	// Neutron bumps an object at most once per transaction.
	bumped map[int64]bool
	stmts  *stmtCache
	db     *sql.DB
}

// Now is the transaction's timestamp (UTC, whole seconds, as Neutron stores).
func (t *Tx) Now() time.Time { return t.now }

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := t.allowed(q); err != nil {
		return nil, err
	}
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.d.rebind(q), args...)
}

func (t *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := t.allowed(q); err != nil {
		return nil, err
	}
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.d.rebind(q), args...)
}

func (t *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	// A refused statement is still run (a *sql.Row cannot carry the
	// error): the transaction is rolled back and fails with t.forbidden.
	t.allowed(q)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.d.rebind(q), args...)
}

// stmt returns the transaction's handle of the pool's prepared statement
// for q, or nil to run q unprepared (cache full, or preparing failed: the
// unprepared call then reports the error).
func (t *Tx) stmt(ctx context.Context, q string) *sql.Stmt {
	if t.stmts == nil {
		return nil
	}
	st := t.stmts.get(t.db, t.d.rebind(q))
	if st == nil {
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

// stmtCache holds prepared statements by text, up to a bound: queries with
// IN lists come in a few lengths, not unboundedly many, but a bound keeps
// a pathological caller from growing it forever.
//
// A statement is prepared in the background, the first caller running its
// query unprepared: preparing needs a free connection of the pool, and
// with every connection held by a transaction (a burst of agents' snapshot
// reads) a prepare on the request path would wait for one — and, under
// the cache's lock, make every other query wait too.
type stmtCache struct {
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	pending map[string]bool
	closed  bool
	wg      sync.WaitGroup
}

const maxCachedStmts = 1024

// prepareTimeout bounds a background prepare.
const prepareTimeout = 10 * time.Second

func (c *stmtCache) get(db *sql.DB, q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st
	}
	if c.closed || c.pending[q] || len(c.m)+len(c.pending) >= maxCachedStmts {
		return nil
	}
	if c.pending == nil {
		c.pending = map[string]bool{}
	}
	c.pending[q] = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
		st, err := db.PrepareContext(ctx, q)
		cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.pending, q)
		if err != nil {
			return // tried again on the next use
		}
		if c.closed {
			st.Close()
			return
		}
		if c.m == nil {
			c.m = map[string]*sql.Stmt{}
		}
		c.m[q] = st
	}()
	return nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
	c.mu.Unlock()
	c.wg.Wait() // no prepare outlives the pool
}

// dialect holds what differs between SQLite and PostgreSQL.
type dialect interface {
	name() string
	rebind(q string) string
	// autoIncrement is the column type of an auto-incrementing primary key.
	autoIncrement() string
	// lockWrites serialises write transactions (concurrent: only against
	// the serialised ones, see Store.WriteConcurrent).
	lockWrites(ctx context.Context, tx *sql.Tx, concurrent bool) error
	// hasTable reports whether the database has a table of that name.
	hasTable(ctx context.Context, db *sql.DB, name string) (bool, error)
}

type sqliteDialect struct{}

func (sqliteDialect) name() string           { return "sqlite" }
func (sqliteDialect) rebind(q string) string { return q }
func (sqliteDialect) autoIncrement() string  { return "INTEGER PRIMARY KEY AUTOINCREMENT" }

// SQLite already runs one writer at a time (BEGIN IMMEDIATE on one connection).
func (sqliteDialect) lockWrites(context.Context, *sql.Tx, bool) error { return nil }

func (sqliteDialect) hasTable(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
		return false, fmt.Errorf("look for table %s: %w", name, err)
	}
	return n > 0, nil
}

// rebindDollar rewrites ? placeholders to $1, $2... for PostgreSQL.
func rebindDollar(q string) string {
	var b strings.Builder
	n := 0
	inString := false
	for _, c := range q {
		switch {
		case c == '\'':
			inString = !inString
			b.WriteRune(c)
		case c == '?' && !inString:
			n++
			b.WriteString("$" + strconv.Itoa(n))
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

const timeLayout = "2006-01-02T15:04:05Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeLayout, s)
	return t
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sqliteURIPath escapes a file name for SQLite's "file:" URI, where '?'
// starts the parameters, '#' a fragment and '%' an escape: a path holding
// them must still name exactly that file.
func sqliteURIPath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}
