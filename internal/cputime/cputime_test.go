package cputime

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	line := "4242 (neutron-server: (rpc) x) S 4000 4242 4242 0 -1 4194560 1 0 0 0 150 25 7 3 20 0 1 0 100 0 0\n"
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 4000 || st.cpu != 150+25+7+3 {
		t.Errorf("got %+v", st)
	}
	if _, err := parseProcStat("garbage"); err == nil {
		t.Error("no error for garbage")
	}
}

func TestTree(t *testing.T) {
	dir := t.TempDir()
	write := func(pid, ppid string, ticks string) {
		if err := os.MkdirAll(filepath.Join(dir, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		line := pid + " (p) S " + ppid + " 0 0 0 -1 0 0 0 0 0 " + ticks + " 0 0 0 20 0 1 0 0 0 0\n"
		if err := os.WriteFile(filepath.Join(dir, pid, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", "1", "100") // root
	write("11", "10", "50") // child
	write("12", "11", "25") // grandchild
	write("20", "1", "1000")
	got, err := tree(dir, []int{10})
	if err != nil {
		t.Fatal(err)
	}
	if got != 1750*time.Millisecond {
		t.Errorf("tree = %v, want 1.75s", got)
	}
	if _, err := tree(dir, []int{99}); err == nil {
		t.Error("no error for a missing root")
	}
}

var sink int

// Self and Children grow with the work done: busy loops here, processes
// that have ended and been waited for. (Each reading is retried a bounded
// number of times, so that a coarse clock cannot fail the test.)
func TestSelfAndChildren(t *testing.T) {
	s0, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	c0, err := Children()
	if err != nil {
		t.Fatal(err)
	}
	grew := false
	for round := 0; round < 100 && !grew; round++ {
		for i := 0; i < 10_000_000; i++ {
			sink ^= i
		}
		s1, err := Self()
		grew = err == nil && s1 > s0
	}
	if !grew {
		t.Error("Self did not grow with busy loops")
	}
	grew = false
	for round := 0; round < 20 && !grew; round++ {
		if out, err := exec.Command("sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done").CombinedOutput(); err != nil {
			t.Fatalf("sh: %v %s", err, out)
		}
		c1, err := Children()
		grew = err == nil && c1 > c0
	}
	if !grew {
		t.Error("Children did not grow with children that ran and were waited for")
	}
}
