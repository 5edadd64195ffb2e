// Package moatbin builds the moat binary for tests that run it as its own
// process (labs, end-to-end tests): once per test process, in a temporary
// directory that Remove deletes.
package moatbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once sync.Once
	dir  string
	bin  string
	err  error
)

// Build returns the path of a moat built from this module's cmd/moat,
// building it on first use; a failed build fails t.
func Build(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		goTool, lookErr := exec.LookPath("go")
		if lookErr != nil {
			goTool = "/usr/local/go/bin/go"
		}
		if dir, err = os.MkdirTemp("", "moatbin"); err != nil {
			return
		}
		bin = filepath.Join(dir, "moat")
		if out, buildErr := exec.Command(goTool, "build", "-o", bin, "github.com/moat-sg/moat/cmd/moat").CombinedOutput(); buildErr != nil {
			err = fmt.Errorf("go build moat: %v\n%s", buildErr, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Remove deletes the binary, if one was built; TestMain calls it after
// m.Run.
func Remove() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
