package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileTokenFollowsTheFile: the agent's token is read again when its
// file changes (a renewed Keystone token), and a file that went away or
// was emptied keeps the last good token rather than sending none.
func TestFileTokenFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.token")
	write := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	write("first-token\n", t0)
	first, err := readToken(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := fileToken(path, first, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i, step := range []struct {
		do   func()
		want string
	}{
		{func() {}, "first-token"},
		{func() { write("second-token", t0.Add(time.Minute)) }, "second-token"},
		{func() { write("", t0.Add(2*time.Minute)) }, "second-token"},
		{func() { os.Remove(path) }, "second-token"},
		{func() { write("third-token", t0.Add(3*time.Minute)) }, "third-token"},
		// Same size, same time: not read again (a stat per request, a read
		// per change).
		{func() { write("fourth-tokn", t0.Add(3*time.Minute)) }, "third-token"},
	} {
		step.do()
		if got := tok(); got != step.want {
			t.Errorf("step %d: token %q, want %q", i, got, step.want)
		}
	}
}
