// Package scratchns makes throwaway network namespaces for kernel tests
// and benchmarks: a random name, a private xtables lock, deletion when
// done, and a record of the process that made each one, so that a later
// run removes what a killed run left behind (Sweep).
//
// Kernel tests use it through internal/netnstest, which adds t.Cleanup and
// the skip-or-fail decision of internal/testenv; the benchmarks of `moat
// bench agent` (internal/syncbench, internal/agentbench) use it directly,
// since they run in the moat binary, which does not link the testing
// package. Production code never creates scratch namespaces: the agent
// runs commands in an existing namespace through dataplane.Netns, and the
// lab names its namespaces itself.
package scratchns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
)

// claimDir holds one claim per scratch namespace (see Claims) and, next
// to it, the namespace's xtables lock file.
const claimDir = "/run/moat-scratch"

var (
	claims = Claims{Dir: claimDir}
	// nameRE matches the names New makes: PREFIX-<8 hex digits>.
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*-[0-9a-f]{8}$`)
	swept  sync.Once
)

// Namespace is a scratch network namespace. Its Netns runs commands inside
// it with XTABLES_LOCKFILE pointing at a lock of its own: legacy iptables
// serialises on /run/xtables.lock across all namespaces otherwise, so that
// parallel tests (and the host's own firewall tools) would wait for each
// other.
type Namespace struct {
	dataplane.Netns
}

// New creates a namespace named prefix-<8 random hex digits> (prefix:
// lower-case letters, digits and dashes) and records this process as its
// owner. Before the first one of the process it sweeps the namespaces
// whose owner is gone (see Sweep; failures there do not stop New). It
// needs root.
func New(prefix string) (*Namespace, error) {
	swept.Do(func() { _ = Sweep(context.Background()) })
	var name string
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		name = prefix + "-" + hex.EncodeToString(b[:])
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("scratch namespace prefix %q: want lower-case letters, digits and dashes", prefix)
		}
		ok, err := claims.Claim(name)
		if err != nil {
			return nil, err
		}
		if ok && !dataplane.NetnsExists(name) {
			break
		}
		if ok {
			_ = claims.Release(name) // a namespace of that name that is not ours
		}
	}
	if err := dataplane.AddNetns(context.Background(), name); err != nil {
		_ = claims.Release(name)
		return nil, err
	}
	return &Namespace{Netns: dataplane.Netns{Name: name, Env: []string{"XTABLES_LOCKFILE=" + lockFile(name)}}}, nil
}

func lockFile(name string) string { return filepath.Join(claimDir, name+".xtables.lock") }

// Delete ends the processes left in the namespace, deletes it, its lock
// file and its claim.
func (n *Namespace) Delete() error {
	return remove(context.Background(), n.Name)
}

func remove(ctx context.Context, name string) error {
	if err := dataplane.DeleteNetns(ctx, name); err != nil {
		return err
	}
	if err := os.Remove(lockFile(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return claims.Release(name)
}

// Sweep deletes the scratch namespaces whose owner is gone: a test binary
// killed by a timeout runs no cleanup. Namespaces of live processes, and
// namespaces this package did not make, are never touched.
func Sweep(ctx context.Context) error {
	orphans, err := claims.Orphans(nameRE.MatchString)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range orphans {
		if err := remove(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("sweep scratch namespace %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Claims records which process made each of a kind of leftover-prone
// resource (scratch namespaces here, the end-to-end tests' labs): one file
// per resource name in Dir, holding the owner's pid and executable. A
// resource whose owner no longer runs was left behind by a killed process.
type Claims struct {
	Dir string
}

// Claim records this process as the owner of name; false if someone has
// claimed it already. The record appears complete or not at all, so that
// a concurrent Orphans never reads a half-written one.
func (c Claims) Claim(name string) (bool, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(c.Dir, ".claim-*")
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, err = fmt.Fprintf(tmp, "%d %s\n", os.Getpid(), self)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	if err := os.Link(tmp.Name(), filepath.Join(c.Dir, name)); errors.Is(err, os.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	return true, nil
}

// Release removes the claim on name.
func (c Claims) Release(name string) error {
	if err := os.Remove(filepath.Join(c.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release %s: %w", name, err)
	}
	return nil
}

// Orphans lists the claimed names (those valid accepts) whose owner is
// gone, sorted.
func (c Claims) Orphans(valid func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(c.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !valid(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.Dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // released meanwhile
		}
		if pid, exe, ok := strings.Cut(strings.TrimSpace(string(b)), " "); ok && ownerAlive(pid, exe) {
			continue
		}
		out = append(out, name)
	}
	return out, nil // os.ReadDir sorts by name
}

// ownerAlive reports whether process pid still runs executable exe (a
// recycled pid runs another one). An executable replaced on disk while it
// runs (a rebuilt moat) still counts as the owner.
func ownerAlive(pid, exe string) bool {
	if _, err := strconv.Atoi(pid); err != nil {
		return false
	}
	got, err := os.Readlink("/proc/" + pid + "/exe")
	return err == nil && (got == exe || got == exe+" (deleted)")
}
