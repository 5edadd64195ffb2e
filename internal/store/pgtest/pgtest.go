// Package pgtest starts a private PostgreSQL cluster for tests: Debian's
// PostgreSQL 15 binaries, a data directory in a temporary directory, trust
// authentication, listening only on a free port of 127.0.0.1. It never
// touches the machine's own clusters.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/moat-sg/moat/internal/testenv"
)

const binDir = "/usr/lib/postgresql/15/bin"

// Cluster is a running private cluster.
type Cluster struct {
	dir  string
	port int
	n    atomic.Int64
}

var (
	once    sync.Once
	shared  *Cluster
	initErr error
)

// Start returns the package's cluster, starting it on first use; it is
// stopped by Stop (call it from TestMain). Without PostgreSQL or root the
// test is skipped, or failed with MOAT_REQUIRE_POSTGRES=1 (CI sets it;
// make test installs PostgreSQL).
func Start(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() { shared, initErr = start() })
	if initErr != nil {
		testenv.Postgres.Missing(t, "PostgreSQL is not available: %v", initErr)
	}
	return shared
}

// Stop stops the cluster if one was started.
func Stop() {
	if shared != nil {
		shared.stop()
	}
}

func start() (*Cluster, error) {
	if _, err := os.Stat(filepath.Join(binDir, "initdb")); err != nil {
		return nil, fmt.Errorf("no %s/initdb (apt-get install postgresql)", binDir)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root to run the cluster as the postgres user")
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("no postgres user: %w", err)
	}
	dir, err := os.MkdirTemp("", "moat-pgtest-")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, port: port}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(filepath.Join(binDir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir)
	if out, err := asPostgres(filepath.Join(binDir, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "pg.log"), "-w", "-o", opts, "start"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return c, nil
}

func (c *Cluster) stop() {
	asPostgres(filepath.Join(binDir, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "stop")
	os.RemoveAll(c.dir)
}

func asPostgres(args ...string) ([]byte, error) {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...).CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NewDatabase creates a fresh database and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("moat%d_%d", os.Getpid(), c.n.Add(1))
	admin, err := sql.Open("pgx", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}
