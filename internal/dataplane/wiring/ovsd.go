package wiring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
)

// PrivateOVS is an Open vSwitch of its own (ovsdb-server and ovs-vswitchd
// with database, sockets, logs and pid files in Dir), for labs and tests on
// hosts where the system's OVS must not be touched. ovs-vswitchd runs in
// the network namespace Netns: its userspace (netdev) datapath opens the
// ports with AF_PACKET sockets in its own namespace.
type PrivateOVS struct {
	Dir   string
	Netns string
}

// OVSDaemons are the daemons of a PrivateOVS, in the order they start.
var OVSDaemons = []string{"ovsdb-server", "ovs-vswitchd"}

// DB is the --db of ovs-vsctl (and Config.OVSDB) for this OVS.
func (o *PrivateOVS) DB() string { return "unix:" + filepath.Join(o.Dir, "db.sock") }

// Env points OVS's tools at Dir (OVS_RUNDIR etc.), e.g. for ovs-appctl.
func (o *PrivateOVS) Env() []string {
	return []string{"OVS_RUNDIR=" + o.Dir, "OVS_LOGDIR=" + o.Dir, "OVS_DBDIR=" + o.Dir, "OVS_SYSCONFDIR=" + o.Dir}
}

// ovsSchemas are where Debian and source builds install the schema.
var ovsSchemas = []string{"/usr/share/openvswitch/vswitch.ovsschema", "/usr/local/share/openvswitch/vswitch.ovsschema"}

// StartPrivateOVS creates the database in dir and starts ovsdb-server and
// ovs-vswitchd (detached, --no-chdir) in network namespace ns ("" = the
// caller's). dir must be short: the socket path is limited to 107 bytes.
// On failure it stops what it started.
func StartPrivateOVS(ctx context.Context, dir, ns string) (*PrivateOVS, error) {
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"} {
		if !lookPath(tool) {
			return nil, fmt.Errorf("start Open vSwitch: %s is not installed (apt install openvswitch-switch)", tool)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	o := &PrivateOVS{Dir: dir, Netns: ns}
	if n := len(filepath.Join(dir, "ovs-vswitchd.ctl")); n > 100 {
		return nil, fmt.Errorf("start Open vSwitch: state directory %s is too long for unix socket paths", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start Open vSwitch: %w", err)
	}
	schema := ""
	for _, s := range ovsSchemas {
		if _, err := os.Stat(s); err == nil {
			schema = s
			break
		}
	}
	if schema == "" {
		return nil, fmt.Errorf("start Open vSwitch: vswitch.ovsschema not found in %v", ovsSchemas)
	}
	local := dataplane.Host{Env: o.Env()}
	var inNS dataplane.Exec = local
	if ns != "" {
		inNS = dataplane.Netns{Name: ns, Env: o.Env()}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	db := p("conf.db")
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		if _, err := local.Run(ctx, nil, "ovsdb-tool", "create", db, schema); err != nil {
			return nil, fmt.Errorf("start Open vSwitch: %w", err)
		}
	}
	fail := func(err error) (*PrivateOVS, error) {
		_ = o.Stop()
		return nil, fmt.Errorf("start Open vSwitch in %s: %w", dir, err)
	}
	if _, err := inNS.Run(ctx, nil, "ovsdb-server", db,
		"--remote=punix:"+p("db.sock"), "--unixctl="+p("ovsdb-server.ctl"),
		"--pidfile="+p("ovsdb-server.pid"), "--log-file="+p("ovsdb-server.log"),
		"--detach", "--no-chdir"); err != nil {
		return fail(err)
	}
	if _, err := local.Run(ctx, nil, "ovs-vsctl", "--db="+o.DB(), "--timeout=10", "--no-wait", "init"); err != nil {
		return fail(err)
	}
	if _, err := inNS.Run(ctx, nil, "ovs-vswitchd", o.DB(),
		"--unixctl="+p("ovs-vswitchd.ctl"),
		"--pidfile="+p("ovs-vswitchd.pid"), "--log-file="+p("ovs-vswitchd.log"),
		"--detach", "--no-chdir"); err != nil {
		return fail(err)
	}
	// Returns once ovs-vswitchd has applied the database.
	if _, err := local.Run(ctx, nil, "ovs-vsctl", "--db="+o.DB(), "--timeout=20", "set", "Open_vSwitch", ".", "external_ids:moat-private=true"); err != nil {
		return fail(fmt.Errorf("ovs-vswitchd does not answer (see %s): %w", p("ovs-vswitchd.log"), err))
	}
	return o, nil
}

// Stop stops the daemons (see StopPrivateOVS).
func (o *PrivateOVS) Stop() error { return StopPrivateOVS(o.Dir) }

// StopPrivateOVS stops the daemons of the PrivateOVS in dir by their pid
// files (SIGTERM, then SIGKILL after 3 s), only when their command line
// names dir. Missing pid files and dead processes are fine.
func StopPrivateOVS(dir string) error {
	var errs []error
	for i := len(OVSDaemons) - 1; i >= 0; i-- {
		if err := StopPidfile(filepath.Join(dir, OVSDaemons[i]+".pid"), dir, 3*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StopPidfile ends the process whose pid is in pidfile, if it is alive and
// its command line contains mustContain (so that a recycled pid is never
// killed): SIGTERM, then SIGKILL after grace. It waits until the process is
// gone (bounded by grace plus one second).
func StopPidfile(pidfile, mustContain string, grace time.Duration) error {
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
	if !processMatches(pid, mustContain) {
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

// processMatches reports whether pid is alive (not a zombie) and its
// command line contains s.
func processMatches(pid int, s string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmd) == 0 { // gone, or a zombie (empty cmdline)
		return false
	}
	return strings.Contains(strings.ReplaceAll(string(cmd), "\x00", " "), s)
}

func waitGone(pid int, mustContain string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !processMatches(pid, mustContain) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
