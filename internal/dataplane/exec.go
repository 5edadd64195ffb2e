// Package dataplane holds the kernel side effects of a host agent behind
// small interfaces: running the iptables, ipset and ovs-vsctl tools
// (subpackages iptables, ipset, wiring), moat's own nftables table
// (subpackage nftables, the agent's --backend nftables), and conntrack over
// netlink. This package itself runs a tool in the host's or a named
// network namespace (Exec, Host, Netns) and enters namespaces.
//
// The tools have in-memory fakes (iptables/iptablestest, ipset/ipsettest,
// wiring.Fake; conntrack is one small interface the agent's tests fake),
// so that the agent's logic is tested without a kernel; the fakes and the
// real implementations are tested in network namespaces the tests create.
package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moat-sg/moat/internal/metrics"
)

// Exec runs a command and returns its standard output. Implementations
// decide where (which network namespace) it runs.
type Exec interface {
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// CommandError is a failed command with what it printed.
type CommandError struct {
	Cmd    string
	Err    error
	Stderr string
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 2000 {
		msg = msg[:2000] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("%s: %v", e.Cmd, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Cmd, e.Err, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Host runs commands in the calling process's own network namespace, with
// an optional environment (e.g. XTABLES_LOCKFILE).
type Host struct {
	Env []string
}

func (h Host) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, err := run(ctx, h.Env, stdin, name, args...)
	countTransaction(name, stdin, err)
	return out, err
}

// Netns runs commands inside a named network namespace through
// `ip netns exec`; tests use it to drive a scratch namespace.
type Netns struct {
	Name string
	Env  []string
}

func (n Netns) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, err := run(ctx, n.Env, stdin, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	countTransaction(name, stdin, err)
	return out, err
}

// countTransaction counts a tool run that was given its input on stdin:
// those are the kernel transactions (iptables-restore, ipset restore,
// nft -f -, ovs-ofctl --bundle), each all or nothing.
func countTransaction(tool string, stdin []byte, err error) {
	if stdin == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	metrics.AgentTransactions.WithLabelValues(filepath.Base(tool), outcome).Inc()
}

func run(ctx context.Context, env []string, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(cmd.Environ(), env...)
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CommandError{Cmd: strings.Join(append([]string{name}, args...), " "), Err: err, Stderr: stderr.String()}
	}
	if stderr.Len() > 0 {
		// Warnings of a command that succeeded (iptables-nft-save's "legacy
		// tables present" on every read): kept for debugging, not louder —
		// a drift check every few seconds would repeat them.
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		slog.Debug("command wrote to stderr", "cmd", strings.Join(append([]string{name}, args...), " "), "stderr", msg)
	}
	return stdout.Bytes(), nil
}
