package iptables

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
)

// iptables-nft-save reads the kernel's nf_tables objects in several netlink
// dumps; when another process commits between them (the agent's own
// iptables-restore, another tool's nft), a rule can name a set the dump of
// sets did not hold, and the tool fails with, for example, "Set with index
// 0 not found" or "Set foo not found". A second read sees a consistent
// generation. Only that failure is retried; any other is reported at once.
var transientSaveRE = regexp.MustCompile(`\bSet (with index \d+|\S+ not found)\b`)

// SaveAttempts bounds the reads of one table when they fail transiently.
const SaveAttempts = 4

// saveBackoff is the pause before the n-th retry (n from 1): 20 ms, 40 ms,
// 60 ms; a variable so that tests need not wait.
var saveBackoff = func(n int) time.Duration { return time.Duration(n) * 20 * time.Millisecond }

// TransientSaveError reports whether err is an iptables-save that failed
// only because another process committed while it read: a
// *dataplane.CommandError whose standard error says a set was not found.
func TransientSaveError(err error) bool {
	var ce *dataplane.CommandError
	return errors.As(err, &ce) && transientSaveRE.MatchString(ce.Stderr)
}

// RetrySave calls save until it succeeds, fails with an error that is not
// TransientSaveError, or has failed SaveAttempts times (then the last
// error says how many). It is the one retry policy of every reader of
// iptables-save: the syncer and the end-to-end tests.
func RetrySave(ctx context.Context, save func(context.Context) ([]byte, error)) ([]byte, error) {
	for n := 1; ; n++ {
		out, err := save(ctx)
		if err == nil || !TransientSaveError(err) {
			return out, err
		}
		if n == SaveAttempts {
			return nil, fmt.Errorf("%w (%d attempts, each while another process committed)", err, n)
		}
		t := time.NewTimer(saveBackoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (retry cut short: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}
