// Package pgtest starts a private PostgreSQL cluster for tests
// (internal/pgcluster), once per test process.
package pgtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/pgcluster"
	"github.com/moat-sg/moat/internal/testenv"
)

// Cluster is a running private cluster.
type Cluster struct{ c *pgcluster.Cluster }

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
	once.Do(func() {
		c, err := pgcluster.Start()
		shared, initErr = &Cluster{c}, err
	})
	if initErr != nil {
		testenv.Postgres.Missing(t, "PostgreSQL is not available: %v", initErr)
	}
	return shared
}

// Stop stops the cluster if one was started.
func Stop() {
	if shared != nil && shared.c != nil {
		shared.c.Stop()
	}
}

// NewDatabase creates a fresh database and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := c.c.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return url
}
