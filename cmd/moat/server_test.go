package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestServerConsole: moat server serves the web console at /ui/ next to
// the API, and not with --console=false.
func TestServerConsole(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, http.StatusOK}, {[]string{"--console=false"}, http.StatusNotFound}} {
		dir := t.TempDir()
		var f serverFlags
		cmd := &cobra.Command{}
		f.register(cmd)
		if err := cmd.ParseFlags(append([]string{"--listen", "127.0.0.1:0", "--db", "sqlite://" + filepath.Join(dir, "moat.db")}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if err := f.readQuotas(cmd); err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		ctx, cancel := context.WithCancel(context.Background())
		st, err := openServerStore(ctx, f.migrate, f.db)
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() { done <- serveAPI(ctx, &f, st, log, apiExtras{ready: func(u string) { ready <- u }}) }()
		url := <-ready
		get := func(path string) (int, string) {
			resp, err := http.Get(url + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get("/ui/"); code != tc.want || (code == http.StatusOK && !strings.Contains(body, "Security Groups")) {
			t.Errorf("%v: GET /ui/ %d, want %d", tc.args, code, tc.want)
		}
		if code, _ := get("/v2.0/security-groups"); code != http.StatusOK {
			t.Errorf("%v: GET /v2.0/security-groups %d", tc.args, code)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
		st.Close()
	}
}
