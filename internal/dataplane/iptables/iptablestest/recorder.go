package iptablestest

import (
	"context"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
)

// Call is one command a Recorder saw.
type Call struct {
	Name  string
	Args  []string
	Stdin string
	Err   error
}

// String prints the command line.
func (c Call) String() string { return strings.Join(append([]string{c.Name}, c.Args...), " ") }

// Recorder wraps an Exec (a fake or a real namespace) and records every
// command it runs, so that tests can assert what was run and with which
// input.
type Recorder struct {
	Exec dataplane.Exec

	mu    sync.Mutex
	calls []Call
}

// Run implements dataplane.Exec.
func (r *Recorder) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, err := r.Exec.Run(ctx, stdin, name, args...)
	r.mu.Lock()
	r.calls = append(r.calls, Call{Name: name, Args: append([]string(nil), args...), Stdin: string(stdin), Err: err})
	r.mu.Unlock()
	return out, err
}

// Calls returns the calls recorded since the last Reset.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Reset forgets the recorded calls.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

// Matching returns the recorded calls whose binary name ends with suffix,
// e.g. "-restore" or "-save".
func (r *Recorder) Matching(suffix string) []Call {
	var out []Call
	for _, c := range r.Calls() {
		if strings.HasSuffix(c.Name, suffix) {
			out = append(out, c)
		}
	}
	return out
}
