package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/store/pgtest"
)

// onBothURLs runs a test on the URL of a database that has no moat schema
// yet: a SQLite file not yet created, and an empty PostgreSQL database.
func onBothURLs(t *testing.T, test func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, "sqlite://"+filepath.Join(t.TempDir(), "moat.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.Start(t).NewDatabase(t)) })
}

// rawDB opens the database behind url around the store, to corrupt or
// age it.
func rawDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", url
	if d, _ := Driver(url); d == "sqlite" {
		driver, dsn = "sqlite", "file:"+url[len("sqlite://"):]
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// migrationRuns reads the migration history: one row per applied version.
func migrationRuns(t *testing.T, url string) []int {
	t.Helper()
	rows, err := rawDB(t, url).Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func allVersions() []int {
	var out []int
	for _, m := range migrations {
		out = append(out, m.version)
	}
	return out
}

// checkAppliedOnce: the versions the openers applied, together, are every
// version exactly once, and so is the history.
func checkAppliedOnce(t *testing.T, url string, applied [][]int) {
	t.Helper()
	var all []int
	for _, a := range applied {
		all = append(all, a...)
	}
	slices.Sort(all)
	if !slices.Equal(all, allVersions()) {
		t.Errorf("versions applied by the openers together: %v, want each of %v once (per opener: %v)", all, allVersions(), applied)
	}
	if got := migrationRuns(t, url); !slices.Equal(got, allVersions()) {
		t.Errorf("schema_migrations holds %v, want %v", got, allVersions())
	}
}

// TestConcurrentOpenMigratesOnce: servers starting at once on one fresh
// database (here goroutines, each with its own connections) all open it
// without error, and each migration runs exactly once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	onBothURLs(t, func(t *testing.T, url string) {
		const n = 8
		ctx := context.Background()
		start := make(chan struct{})
		applied := make([][]int, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, a, err := openMigrated(ctx, url)
				applied[i], errs[i] = a, err
				if err == nil {
					s.Close()
				}
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("opener %d: %v", i, err)
			}
		}
		checkAppliedOnce(t, url, applied)
	})
}

// The helper process of TestConcurrentProcessesMigrateOnce: TestMain runs
// it instead of the tests when these are set.
const (
	helperURLEnv  = "MOAT_STORE_HELPER_MIGRATE_URL"
	helperGoEnv   = "MOAT_STORE_HELPER_GO_FILE"
	helperWaitMax = 60 * time.Second
)

// runMigrateHelper waits for the go file (so that every process starts
// migrating at once), upgrades the database and prints the versions it
// applied as JSON.
func runMigrateHelper(url, goFile string) int {
	for deadline := time.Now().Add(helperWaitMax); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "no go file")
			return 2
		}
	}
	up, err := Upgrade(context.Background(), url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(up.Applied); err != nil {
		return 1
	}
	return 0
}

// TestConcurrentProcessesMigrateOnce: the same with separate processes
// (this test binary run again), as servers on several machines.
func TestConcurrentProcessesMigrateOnce(t *testing.T) {
	onBothURLs(t, func(t *testing.T, url string) {
		const n = 6
		goFile := filepath.Join(t.TempDir(), "go")
		cmds := make([]*exec.Cmd, n)
		for i := range cmds {
			c := exec.Command(os.Args[0], "-test.run=^$")
			c.Env = append(os.Environ(), helperURLEnv+"="+url, helperGoEnv+"="+goFile)
			c.Stderr = &prefixWriter{t: t, prefix: fmt.Sprintf("process %d: ", i)}
			cmds[i] = c
		}
		outs := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, c := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = c.Output()
			}()
		}
		// Every process waits for the file, then they go together.
		time.Sleep(200 * time.Millisecond) // lets them start; correctness does not depend on it
		if err := os.WriteFile(goFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		applied := make([][]int, n)
		for i := range cmds {
			if errs[i] != nil {
				t.Errorf("process %d: %v", i, errs[i])
				continue
			}
			if err := json.Unmarshal(outs[i], &applied[i]); err != nil {
				t.Errorf("process %d printed %q: %v", i, outs[i], err)
			}
		}
		checkAppliedOnce(t, url, applied)
	})
}

type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s%s", w.prefix, p)
	return len(p), nil
}

// TestNewerSchemaRefused: a database a newer moat upgraded (schema N+1,
// with a change this binary knows nothing of) is refused by every way of
// opening it, with the versions in the error, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	onBothURLs(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openURL(t, url)
		s.Close()
		future := SchemaVersion() + 1
		raw := rawDB(t, url)
		for _, q := range []string{
			`ALTER TABLE ports ADD COLUMN from_the_future TEXT`,
			fmt.Sprintf(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, 'from the future', '2030-01-01T00:00:00Z')`, future),
		} {
			if _, err := raw.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		want := &SchemaError{Database: future, Binary: SchemaVersion()}
		opens := map[string]func() error{
			"Open": func() error { s, err := Open(ctx, url); closeIf(s); return err },
			"Upgrade": func() error {
				_, err := Upgrade(ctx, url)
				return err
			},
		}
		for _, m := range []Mode{Existing, ReadOnly} {
			opens["OpenMode "+m.String()] = func() error { s, err := OpenMode(ctx, url, m); closeIf(s); return err }
		}
		for _, name := range []string{"Open", "Upgrade", "OpenMode existing", "OpenMode read-only"} {
			err := opens[name]()
			var se *SchemaError
			if !errors.As(err, &se) || *se != *want {
				t.Errorf("%s: %v, want %v", name, err, want)
			}
		}
		if msg := want.Error(); !strings.Contains(msg, fmt.Sprintf("version %d, newer than this moat's (%d)", future, SchemaVersion())) {
			t.Errorf("message %q does not say which is newer", msg)
		}
		got, err := Inspect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != future || got.Binary != SchemaVersion() || len(got.Applied) != future || len(got.Pending) != 0 {
			t.Errorf("Inspect: %+v", got)
		}
		if runs := migrationRuns(t, url); len(runs) != future {
			t.Errorf("history changed: %v", runs)
		}
	})
}

func closeIf(s *Store) {
	if s != nil {
		s.Close()
	}
}

// TestOlderSchemaNeedsUpgrade: a database of the previous version is
// refused by the modes that never migrate, and Upgrade brings it to this
// moat's version, applying only what it lacks.
func TestOlderSchemaNeedsUpgrade(t *testing.T) {
	onBothURLs(t, func(t *testing.T, url string) {
		ctx := context.Background()
		all := migrations
		t.Cleanup(func() { migrations = all })
		migrations = all[:len(all)-1]
		old := openURL(t, url)
		old.Close()
		migrations = all
		want := &SchemaError{Database: SchemaVersion() - 1, Binary: SchemaVersion()}
		for _, m := range []Mode{Existing, ReadOnly} {
			s, err := OpenMode(ctx, url, m)
			closeIf(s)
			var se *SchemaError
			if !errors.As(err, &se) || *se != *want {
				t.Errorf("%s: %v, want %v", m, err, want)
			}
		}
		if !strings.Contains(want.Error(), "run moat db upgrade") {
			t.Errorf("message %q does not say what to do", want.Error())
		}
		sch, err := Inspect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if sch.Version != SchemaVersion()-1 || len(sch.Pending) != 1 || sch.Pending[0].Version != SchemaVersion() || sch.Check() == nil {
			t.Errorf("Inspect: %+v", sch)
		}
		up, err := Upgrade(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if up.From != SchemaVersion()-1 || up.To != SchemaVersion() || !slices.Equal(up.Applied, []int{SchemaVersion()}) {
			t.Errorf("Upgrade: %+v", up)
		}
		up, err = Upgrade(ctx, url)
		if err != nil || up.From != SchemaVersion() || up.To != SchemaVersion() || len(up.Applied) != 0 {
			t.Errorf("second Upgrade: %+v, %v", up, err)
		}
		for _, m := range []Mode{Existing, ReadOnly} {
			s, err := OpenMode(ctx, url, m)
			if err != nil {
				t.Errorf("%s after the upgrade: %v", m, err)
			}
			closeIf(s)
		}
	})
}

// TestModesThatNeverCreate: Existing and ReadOnly on a database that is
// not there fail clearly and leave nothing behind; on an empty PostgreSQL
// database they say it has no schema.
func TestModesThatNeverCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "moat.db")
	for _, m := range []Mode{Existing, ReadOnly} {
		s, err := OpenMode(ctx, "sqlite://"+path, m)
		closeIf(s)
		if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), path+": the database does not exist") {
			t.Errorf("%s on a missing file: %v", m, err)
		}
	}
	if _, err := Inspect(ctx, "sqlite://"+path); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("Inspect on a missing file: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("opening left %v behind", entries)
	}
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Start(t).NewDatabase(t)
		for _, m := range []Mode{Existing, ReadOnly} {
			s, err := OpenMode(ctx, url, m)
			closeIf(s)
			var se *SchemaError
			if !errors.As(err, &se) || se.Database != 0 || !strings.Contains(err.Error(), "no moat schema yet") {
				t.Errorf("%s on an empty database: %v", m, err)
			}
		}
		var n int
		if err := rawDB(t, url).QueryRow(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("opening created %d tables (%v)", n, err)
		}
	})
}

// TestReadOnlyRefusesWrites: a read-only store reads, and every write
// fails: through Write, and in the database itself even when the
// session tries to allow writes.
func TestReadOnlyRefusesWrites(t *testing.T) {
	onBothURLs(t, func(t *testing.T, url string) {
		ctx := context.Background()
		buildFixture(t, openURL(t, url))
		s, err := OpenMode(ctx, url, ReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if snap, err := readSnapshot(s, "h1"); err != nil || len(snap.Ports) == 0 {
			t.Fatalf("read: %v, %+v", err, snap)
		}
		if err := s.Write(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Write: %v, want ErrReadOnly", err)
		}
		// Around moat: the database refuses too.
		conn, err := s.reader.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if s.d.name() == "sqlite" {
			if _, err := conn.ExecContext(ctx, `PRAGMA query_only = 0`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM quotas`); err == nil {
			t.Error("a write through the read-only store's connection succeeded")
		}
	})
}
