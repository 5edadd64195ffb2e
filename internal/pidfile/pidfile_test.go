package pidfile

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sleeper starts a process that lives until killed and writes its pid to
// a pid file; it is reaped in the background, so that a killed one leaves
// no zombie.
func sleeper(t *testing.T) (pid int, file string) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	// Right after the fork the child still runs the test binary: wait
	// for the exec, or Matches sees this binary's command line.
	for deadline := time.Now().Add(5 * time.Second); !Matches(cmd.Process.Pid, "sleep 600"); {
		if time.Now().After(deadline) {
			t.Fatalf("sleep %d never exec'd", cmd.Process.Pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	file = filepath.Join(t.TempDir(), "sleep.pid")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, file
}

func TestStop(t *testing.T) {
	pid, file := sleeper(t)
	if !Matches(pid, "sleep 600") {
		t.Fatalf("Matches(%d, sleep 600) = false for a running sleep", pid)
	}
	if err := Stop(file, "sleep 600", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if Matches(pid, "sleep") {
		t.Errorf("process %d still runs after Stop", pid)
	}
	// Stopping again (the process is gone) is fine.
	if err := Stop(file, "sleep 600", time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// A pid whose command line does not name what the caller expects (a
// recycled pid) is never signalled.
func TestStopSparesStrangers(t *testing.T) {
	pid, file := sleeper(t)
	if err := Stop(file, "/run/moat-lab/nosuchlab", time.Second); err != nil {
		t.Fatal(err)
	}
	if !Matches(pid, "sleep 600") {
		t.Errorf("Stop killed process %d, whose command line does not name the lab", pid)
	}
}

func TestStopBadFiles(t *testing.T) {
	dir := t.TempDir()
	if err := Stop(filepath.Join(dir, "missing.pid"), "x", time.Second); err != nil {
		t.Errorf("missing pid file: %v", err)
	}
	for _, content := range []string{"", "abc", "1", "-5"} {
		f := filepath.Join(dir, "bad.pid")
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Stop(f, "x", time.Second); err == nil || !strings.Contains(err.Error(), "not a pid") {
			t.Errorf("pid file %q: error %v, want \"not a pid\"", content, err)
		}
	}
}

// leaderExitEnv makes the test binary, re-executed, end its main thread
// alone (exit, not exit_group): its leader is a zombie while the process's
// other threads go on, the state a SIGKILLed multi-threaded process is in
// until its last thread has exited.
const leaderExitEnv = "MOAT_PIDFILE_TEST_LEADER_EXIT"

func init() {
	if os.Getenv(leaderExitEnv) != "" {
		runtime.LockOSThread() // init runs on the main thread: keep it there
		go func() { select {} }()
		syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
	}
}

func TestRunningSeesThreadsBehindAZombieLeader(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leaderExitEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	pid := cmd.Process.Pid
	leaderZombie := func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		i := bytes.LastIndexByte(b, ')')
		return err == nil && i > 0 && i+2 < len(b) && b[i+2] == 'Z'
	}
	for deadline := time.Now().Add(5 * time.Second); !leaderZombie(); {
		if time.Now().After(deadline) {
			t.Fatalf("the leader of %d never became a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !Running(pid) {
		t.Fatalf("Running(%d) = false while the process's other threads run", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitGone(pid, "pidfile.test", 5*time.Second) {
		t.Fatalf("process %d still runs 5 s after SIGKILL", pid)
	}
	if Running(pid) {
		t.Errorf("Running(%d) = true after waitGone", pid)
	}
}

func TestRunning(t *testing.T) {
	pid, _ := sleeper(t)
	if !Running(pid) {
		t.Errorf("Running(%d) = false for a running sleep", pid)
	}
	// A killed child left unreaped is a zombie: not running.
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); Running(cmd.Process.Pid); {
		if time.Now().After(deadline) {
			t.Fatalf("Running(%d) still true 5 s after SIGKILL", cmd.Process.Pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if Running(1 << 30) {
		t.Errorf("Running of a pid that cannot exist = true")
	}
}
