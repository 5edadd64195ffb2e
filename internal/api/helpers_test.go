package api

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/store/pgtest"
)

// newTestServer serves a fresh moat API over real HTTP on loopback, with
// its own SQLite database.
func newTestServer(t testing.TB, auth Authenticator) *httptest.Server {
	t.Helper()
	return newTestServerOn(t, auth, "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
}

// newTestServerOn is newTestServer over the database at url.
func newTestServerOn(t testing.TB, auth Authenticator, url string) *httptest.Server {
	t.Helper()
	st, err := store.Open(context.Background(), url)
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

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
