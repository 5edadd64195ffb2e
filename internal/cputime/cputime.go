// Package cputime reads CPU time for the benchmarks: this process's, the
// reaped children's (the iptables tools a syncer ran), and a process tree's
// from /proc (a server measured from outside, with the workers it forked).
package cputime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Self is the CPU time (user+system, all threads) this process has used
// so far.
func Self() (time.Duration, error) { return rusage(syscall.RUSAGE_SELF) }

// Children is the CPU time (user+system) of this process's children that
// have ended and been waited for, the kernel's work on their behalf
// included.
func Children() (time.Duration, error) { return rusage(syscall.RUSAGE_CHILDREN) }

func rusage(who int) (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat times. It is
// 100 on every Linux architecture Go supports (the kernel ABI fixes it).
const clockTicks = 100

// procStat is the part of /proc/<pid>/stat a CPU reading needs.
type procStat struct {
	ppid int
	// cpu is utime+stime of the process plus cutime+cstime of its reaped
	// children, in clock ticks.
	cpu int64
}

// parseProcStat parses /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("no ')' in %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("short stat line %q", s)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("ppid %q: %w", f[1], err)
	}
	var cpu int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("cpu time %q: %w", v, err)
		}
		cpu += n
	}
	return procStat{ppid: ppid, cpu: cpu}, nil
}

// Tree is the CPU time used so far by the processes roots and all their
// live descendants, including children they have already reaped (a
// PostgreSQL postmaster accumulates the time of its exited backends). It
// reads /proc, so it works on Linux only. Descendants that exit without
// being reaped by a process in the tree between two readings are missed.
func Tree(roots []int) (time.Duration, error) {
	return tree("/proc", roots)
}

func tree(procDir string, roots []int) (time.Duration, error) {
	if len(roots) == 0 {
		return 0, nil
	}
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", procDir, err)
	}
	stats := map[int]procStat{}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue // exited while we looked
		}
		st, err := parseProcStat(string(raw))
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", pid, err)
		}
		stats[pid] = st
		children[st.ppid] = append(children[st.ppid], pid)
	}
	var ticks int64
	seen := map[int]bool{}
	queue := []int{}
	for _, r := range roots {
		if _, ok := stats[r]; !ok {
			return 0, fmt.Errorf("process %d does not exist", r)
		}
		queue = append(queue, r)
	}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		ticks += stats[pid].cpu
		queue = append(queue, children[pid]...)
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}
