// Package pidfile stops daemons by their pid files without ever signalling
// a stranger: the process must still be alive and its command line must
// name what the caller expects (a recycled pid runs something else). The
// lab stops its moat with it, internal/ovsd its ovsdb-server and
// ovs-vswitchd.
package pidfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stop ends the process whose pid is in pidfile, if it is alive and its
// command line contains mustContain: SIGTERM, then SIGKILL after grace. It
// waits until the process is gone (bounded by grace plus one second). A
// missing pid file or a dead process is fine.
func Stop(pidfile, mustContain string, grace time.Duration) error {
	b, err := os.ReadFile(pidfile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", pidfile, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pid file %s holds %q, not a pid", pidfile, strings.TrimSpace(string(b)))
	}
	if !Matches(pid, mustContain) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(pid, mustContain, grace) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(pid, mustContain, time.Second) {
		return nil
	}
	return fmt.Errorf("process %d (%s) survives SIGKILL", pid, pidfile)
}

// Matches reports whether pid is alive (not a zombie) and its command line
// contains s.
func Matches(pid int, s string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmd) == 0 { // gone, or a zombie (empty cmdline)
		return false
	}
	return strings.Contains(strings.ReplaceAll(string(cmd), "\x00", " "), s)
}

func waitGone(pid int, mustContain string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !Matches(pid, mustContain) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
