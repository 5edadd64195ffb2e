package api

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/moat-sg/moat/internal/store"
)

// newTestServer serves a fresh moat API over real HTTP on loopback, with
// its own SQLite database.
func newTestServer(t testing.TB, auth Authenticator) *httptest.Server {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Store: st, Auth: auth}))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return srv
}
