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
	dir    string
	port   int
	socket bool // a unix socket only, no TCP
	n      atomic.Int64
}

// Options place a cluster.
type Options struct {
	// Dir holds the data directory and the socket; "" makes a temporary
	// one (removed by Stop). It must be short (unix socket paths).
	Dir string
	// SocketOnly listens on a unix socket in Dir only, not on TCP: usable
	// from every network namespace, configuring none (moat lab).
	SocketOnly bool
}

// Start initialises and starts a cluster in a temporary directory,
// listening on a free port of 127.0.0.1 (as the postgres user: needs root
// and Debian's postgresql package).
func Start() (*Cluster, error) { return StartWith(Options{}) }

// StartWith is Start placed by opt.
func StartWith(opt Options) (*Cluster, error) {
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
	dir := opt.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "moat-pgtest-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := 5432 // the socket's name; the socket is in dir alone
	if !opt.SocketOnly {
		if port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	c := &Cluster{dir: dir, port: port, socket: opt.SocketOnly}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(filepath.Join(BinDir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	listen := "127.0.0.1"
	if opt.SocketOnly {
		listen = "''"
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir, listen)
	if out, err := asPostgres(filepath.Join(BinDir, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "pg.log"), "-w", "-o", opts, "start"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return c, nil
}

// Stop stops the cluster and removes its data.
func (c *Cluster) Stop() { StopDir(c.dir) }

// StopDir stops the cluster whose Options.Dir was dir (if it runs) and
// removes dir.
func StopDir(dir string) error {
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		if out, err := asPostgres(filepath.Join(BinDir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
		}
	}
	return os.RemoveAll(dir)
}

// url is the URL of a database of the cluster.
func (c *Cluster) url(db string) string {
	if c.socket {
		return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, c.dir, c.port)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
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
	admin, err := sql.Open("pgx", c.url("postgres"))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return c.url(name), nil
}
