package iptables

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables/iptablestest"
)

// racingSave fails the first n saves as iptables-nft-save does when
// another process commits while it reads, then runs the fake kernel.
type racingSave struct {
	k      *iptablestest.Kernel
	fail   int // saves left to fail
	stderr string
	saves  int
}

func (r *racingSave) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if strings.HasSuffix(name, "-save") {
		r.saves++
		if r.fail > 0 {
			r.fail--
			return nil, &dataplane.CommandError{Cmd: name, Err: &iptablestest.ExitError{Code: 1}, Stderr: r.stderr}
		}
	}
	return r.k.Run(ctx, stdin, name, args...)
}

func noBackoff(t *testing.T) {
	old := saveBackoff
	saveBackoff = func(int) time.Duration { return 0 }
	t.Cleanup(func() { saveBackoff = old })
}

func TestTransientSaveError(t *testing.T) {
	for _, tc := range []struct {
		stderr string
		want   bool
	}{
		{"Set with index 0 not found\n", true},
		{"iptables-nft-save v1.8.9 (nf_tables): Set with index 3 not found\n", true},
		{"Set NIPv4abc not found\n", true},
		{"iptables-nft-save v1.8.9 (nf_tables): table `filter' is incompatible, use 'nft' tool.\n", false},
		{"Another app is currently holding the xtables lock.\n", false},
		{"ipset: Set NIPv4abc does not exist\n", false},
		{"", false},
	} {
		err := error(&dataplane.CommandError{Cmd: "iptables-nft-save", Err: errors.New("exit status 1"), Stderr: tc.stderr})
		if got := TransientSaveError(err); got != tc.want {
			t.Errorf("TransientSaveError(%q) = %v, want %v", tc.stderr, got, tc.want)
		}
	}
	if TransientSaveError(errors.New("Set with index 0 not found")) {
		t.Error("an error that is not a failed command is transient")
	}
}

func TestRetrySave(t *testing.T) {
	noBackoff(t)
	transient := &dataplane.CommandError{Cmd: "iptables-nft-save", Err: errors.New("exit status 1"), Stderr: "Set with index 0 not found\n"}
	other := &dataplane.CommandError{Cmd: "iptables-nft-save", Err: errors.New("exit status 1"), Stderr: "permission denied\n"}
	for _, tc := range []struct {
		name      string
		errs      []error // what the calls return, in order; then success
		wantCalls int
		wantErr   string
	}{
		{"first read succeeds", nil, 1, ""},
		{"two transient failures", []error{transient, transient}, 3, ""},
		{"transient until the bound", []error{transient, transient, transient, transient, transient}, SaveAttempts, "(4 attempts, each while another process committed)"},
		{"another error is not retried", []error{other, transient}, 1, "permission denied"},
		{"another error after a transient one", []error{transient, other}, 2, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			out, err := RetrySave(context.Background(), func(context.Context) ([]byte, error) {
				calls++
				if calls <= len(tc.errs) {
					return nil, tc.errs[calls-1]
				}
				return []byte("saved"), nil
			})
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == "" {
				if err != nil || string(out) != "saved" {
					t.Errorf("RetrySave = %q, %v", out, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("RetrySave error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRetrySaveStopsWithContext(t *testing.T) {
	old := saveBackoff
	saveBackoff = func(int) time.Duration { return time.Hour }
	t.Cleanup(func() { saveBackoff = old })
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := RetrySave(ctx, func(context.Context) ([]byte, error) {
		calls++
		cancel()
		return nil, &dataplane.CommandError{Cmd: "iptables-nft-save", Err: errors.New("exit status 1"), Stderr: "Set with index 0 not found\n"}
	})
	if calls != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("%d calls, error %v; want 1 call and context.Canceled", calls, err)
	}
}

// The syncer's reads go through RetrySave: a save that races a commit is
// read again and the apply succeeds; one that keeps failing fails the
// apply after SaveAttempts reads, with the tool's message.
func TestSyncerRetriesTransientSave(t *testing.T) {
	noBackoff(t)
	rs := newBench(t, 2).rs

	r := &racingSave{k: iptablestest.New(), fail: 2, stderr: "Set with index 0 not found\n"}
	s := NewSyncer(r, NFT)
	if _, err := s.Apply(context.Background(), rs); err != nil {
		t.Fatalf("Apply after two transient save failures: %v", err)
	}
	assertKernel(t, r.k, rs)
	// Four tables (raw and filter of both families), two of the reads
	// repeated.
	if r.saves != 4+2 {
		t.Errorf("%d saves, want 6", r.saves)
	}

	r = &racingSave{k: iptablestest.New(), fail: 100, stderr: "Set with index 0 not found\n"}
	_, err := NewSyncer(r, NFT).Apply(context.Background(), rs)
	if err == nil || !strings.Contains(err.Error(), "Set with index 0 not found") {
		t.Fatalf("Apply = %v, want the save's error", err)
	}
	if r.saves != SaveAttempts {
		t.Errorf("%d saves, want %d", r.saves, SaveAttempts)
	}

	r = &racingSave{k: iptablestest.New(), fail: 1, stderr: "iptables-nft-save: permission denied\n"}
	if _, err := NewSyncer(r, NFT).Apply(context.Background(), rs); err == nil {
		t.Fatal("Apply succeeded after a save failed for good")
	}
	if r.saves != 1 {
		t.Errorf("%d saves after a lasting failure, want 1", r.saves)
	}
}
