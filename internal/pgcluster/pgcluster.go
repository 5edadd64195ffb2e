// Package pgcluster runs a private PostgreSQL cluster: Debian's PostgreSQL
// 15 binaries, a data directory in a temporary directory, trust
// authentication, listening only on a free port of 127.0.0.1, durability
// off (it is for tests and benchmarks, never for data that matters). It
// never touches the machine's own clusters.
package pgcluster

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
	"sync/atomic"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// BinDir is where Debian installs PostgreSQL 15's server binaries.
const BinDir = "/usr/lib/postgresql/15/bin"

// Cluster is a running private cluster.
type Cluster struct {
	dir  string
	port int
	n    atomic.Int64
}

// Start initialises and starts a cluster (as the postgres user: needs root
// and Debian's postgresql package).
func Start() (*Cluster, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err != nil {
		return nil, fmt.Errorf("no %s/initdb (apt-get install postgresql)", BinDir)
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
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{dir: dir, port: port}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(filepath.Join(BinDir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir)
	if out, err := asPostgres(filepath.Join(BinDir, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "pg.log"), "-w", "-o", opts, "start"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return c, nil
}

// Stop stops the cluster and removes its data.
func (c *Cluster) Stop() {
	asPostgres(filepath.Join(BinDir, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "stop")
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
func (c *Cluster) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("moat%d_%d", os.Getpid(), c.n.Add(1))
	admin, err := sql.Open("pgx", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name), nil
}
