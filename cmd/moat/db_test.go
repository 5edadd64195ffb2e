package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/store/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	moatbin.Remove()
	os.Exit(code)
}

// TestDBUpgradeAndVersion: moat db version reads without creating; moat
// db upgrade creates and upgrades once, then has nothing to do.
func TestDBUpgradeAndVersion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "moat.db")
	url := "sqlite://" + path

	out, err := runCmd(t, newDBCmd, "", "version", "--db", url)
	if !errors.Is(err, store.ErrNoDatabase) {
		t.Errorf("version of a missing database: %v (%s)", err, out)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("moat db version created the database: %v", err)
	}

	out, err = runCmd(t, newDBCmd, "", "upgrade", "--db", url)
	var versions []string
	for v := 1; v <= store.SchemaVersion(); v++ {
		versions = append(versions, strconv.Itoa(v))
	}
	if want := fmt.Sprintf("schema upgraded from version 0 to %d (applied %s)", store.SchemaVersion(), strings.Join(versions, ", ")); err != nil || !strings.Contains(out, want) {
		t.Errorf("first upgrade: %v, %q, want %q", err, out, want)
	}
	out, err = runCmd(t, newDBCmd, "", "upgrade", "--db", url)
	if want := fmt.Sprintf("schema version %d, already this moat's", store.SchemaVersion()); err != nil || !strings.Contains(out, want) {
		t.Errorf("second upgrade: %v, %q, want %q", err, out, want)
	}

	out, err = runCmd(t, newDBCmd, "", "version", "--db", url, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Database int    `json:"database_version"`
		Binary   int    `json:"moat_version"`
		Status   string `json:"status"`
		Applied  []struct {
			Version int `json:"version"`
		} `json:"applied"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v.Database != store.SchemaVersion() || v.Binary != store.SchemaVersion() || v.Status != "current" || len(v.Applied) != store.SchemaVersion() {
		t.Errorf("version --json: %s", out)
	}
	out, err = runCmd(t, newDBCmd, "", "version", "--db", url)
	if err != nil || !strings.Contains(out, "status:                  current") {
		t.Errorf("version: %v\n%s", err, out)
	}
}

// futureDB is a database a newer moat upgraded: schema version N+1.
func futureDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "moat.db")
	if _, err := store.Upgrade(context.Background(), "sqlite://"+path); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', '2030-01-01T00:00:00Z')`,
		store.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	return "sqlite://" + path
}

// TestOlderBinaryRefusesToStart: every command that opens the database
// refuses one whose schema is newer than this moat's, saying so, and
// changes nothing; moat db version reports it.
func TestOlderBinaryRefusesToStart(t *testing.T) {
	url := futureDB(t)
	want := fmt.Sprintf("schema is at version %d, newer than this moat's (%d)", store.SchemaVersion()+1, store.SchemaVersion())
	for _, tc := range []struct {
		name string
		run  func() (string, error)
	}{
		{"server", func() (string, error) {
			return runCmd(t, newServerCmd, "", "--db", url, "--listen", "127.0.0.1:0")
		}},
		{"server --migrate always", func() (string, error) {
			return runCmd(t, newServerCmd, "", "--db", url, "--listen", "127.0.0.1:0", "--migrate", "always")
		}},
		{"allinone", func() (string, error) {
			return runCmd(t, newAllinoneCmd, "", "--db", url, "--listen", "127.0.0.1:0")
		}},
		{"agent", func() (string, error) { return runCmd(t, newAgentCmd, "", "--db", url, "--host", "h1") }},
		{"db upgrade", func() (string, error) { return runCmd(t, newDBCmd, "", "upgrade", "--db", url) }},
	} {
		out, err := tc.run()
		var se *store.SchemaError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (%s), want an error saying %q", tc.name, err, out, want)
		}
	}
	out, err := runCmd(t, newDBCmd, "", "version", "--db", url)
	if err != nil || !strings.Contains(out, "status:                  newer: ") || !strings.Contains(out, want) {
		t.Errorf("db version: %v\n%s", err, out)
	}
	sch, err := store.Inspect(context.Background(), url)
	if err != nil || sch.Version != store.SchemaVersion()+1 {
		t.Errorf("the database changed: %+v, %v", sch, err)
	}
}

// TestServerMigrateFlag: --migrate auto upgrades SQLite at start and
// leaves PostgreSQL to moat db upgrade; never and always say what they
// say; the agent never creates a database.
func TestServerMigrateFlag(t *testing.T) {
	for _, tc := range []struct {
		migrate, url string
		want         store.Mode
	}{
		{"auto", "sqlite:///var/lib/moat/moat.db", store.Migrate},
		{"auto", "postgres://moat@db/moat", store.Existing},
		{"auto", "postgresql://moat@db/moat", store.Existing},
		{"always", "postgres://moat@db/moat", store.Migrate},
		{"never", "sqlite:///var/lib/moat/moat.db", store.Existing},
	} {
		got, err := openModeFor(tc.migrate, tc.url)
		if err != nil || got != tc.want {
			t.Errorf("--migrate %s --db %s: %v, %v; want %v", tc.migrate, tc.url, got, err, tc.want)
		}
	}
	for _, bad := range [][2]string{{"yes", "sqlite:///x.db"}, {"auto", "mysql://x"}} {
		if _, err := openModeFor(bad[0], bad[1]); err == nil {
			t.Errorf("--migrate %s --db %s accepted", bad[0], bad[1])
		}
	}

	dir := t.TempDir()
	missing := "sqlite://" + filepath.Join(dir, "moat.db")
	if _, err := runCmd(t, newServerCmd, "", "--db", missing, "--listen", "127.0.0.1:0", "--migrate", "never"); !errors.Is(err, store.ErrNoDatabase) {
		t.Errorf("server --migrate never on a missing database: %v", err)
	}
	if _, err := runCmd(t, newAgentCmd, "", "--db", missing, "--host", "h1"); !errors.Is(err, store.ErrNoDatabase) {
		t.Errorf("agent on a missing database: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}

	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Start(t).NewDatabase(t)
		_, err := runCmd(t, newServerCmd, "", "--db", url, "--listen", "127.0.0.1:0")
		var se *store.SchemaError
		if !errors.As(err, &se) || se.Database != 0 || !strings.Contains(err.Error(), "run moat db upgrade to create it; or start with --migrate=always") {
			t.Errorf("server on an empty PostgreSQL database: %v", err)
		}
		if _, err := runCmd(t, newDBCmd, "", "upgrade", "--db", url); err != nil {
			t.Fatal(err)
		}
		// Now the server would start: opening is all this checks.
		st, err := openServerStore(context.Background(), migrateAuto, url)
		if err != nil {
			t.Fatalf("after moat db upgrade: %v", err)
		}
		st.Close()
	})
}

// TestToolsOpenTheStoreReadOnly: a tool pointed at a database that is not
// there says so and creates nothing; at a newer schema it says that.
func TestToolsOpenTheStoreReadOnly(t *testing.T) {
	dump := filepath.Join(traceData, "counters", "iptables-save-c.txt")
	dir := t.TempDir()
	missing := "sqlite://" + filepath.Join(dir, "moat.db")
	out, err := runCmd(t, newExplainCmd, "", "--iptables-save", dump, "--port", "c0a350e0", "--db", missing)
	if err != nil || !strings.Contains(out, "rule ids unknown: sqlite "+filepath.Join(dir, "moat.db")+": the database does not exist") {
		t.Errorf("explain --db missing: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("explain created %v", entries)
	}
	out, err = runCmd(t, newExplainCmd, "", "--iptables-save", dump, "--port", "c0a350e0", "--db", futureDB(t))
	if err != nil || !strings.Contains(out, "rule ids unknown: the database schema is at version") {
		t.Errorf("explain --db newer: %v\n%s", err, out)
	}
}
