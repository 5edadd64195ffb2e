// Package pidfile stops daemons by their pid files without ever signalling
// a stranger: the process must still be alive and its command line must
// name what the caller expects (a recycled pid runs something else). The
// lab stops its moat with it, internal/ovsd its ovsdb-server and
// ovs-vswitchd.
package pidfile

import (
	"bytes"
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

// hasCmdline reports whether pid has a command line: it runs a program
// (a zombie, or a leader that has exited, has none).
func hasCmdline(pid int) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(cmd) > 0
}

// Running reports whether any thread of pid still runs. "Not a zombie" is
// not the test: SIGKILL makes a multi-threaded process's leader a zombie
// while its other threads are still exiting, and the process's files (a
// listening socket among them) are closed only when the last one has. A
// zombie whose threads have all exited, or no such process, is not running.
func Running(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue // exited since the listing
		}
		// The state is the field after "(comm)"; comm may hold spaces and
		// parentheses, so look from the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return true // unreadable: assume it runs rather than reuse its resources
		}
		if st := b[i+2]; st != 'Z' && st != 'X' {
			return true
		}
	}
	return false
}

// waitGone waits until pid no longer runs what the caller stopped: no
// thread of it runs, or the pid now runs something else.
func waitGone(pid int, mustContain string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !Running(pid) || !Matches(pid, mustContain) && hasCmdline(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
