// Package ovsd runs an Open vSwitch of its own: ovsdb-server and
// ovs-vswitchd with database, sockets, logs and pid files in one
// directory, for `moat lab` and for the wiring and end-to-end tests on
// hosts where the system's OVS must not be touched. It is not part of the
// agent: the agent talks to whatever OVS --ovsdb names (the lab points it
// at this one), through internal/dataplane/wiring.
package ovsd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/pidfile"
)

// OVS is a private Open vSwitch whose state is in Dir. ovs-vswitchd runs
// in the network namespace Netns: its userspace (netdev) datapath opens
// the ports with AF_PACKET sockets in its own namespace.
type OVS struct {
	Dir   string
	Netns string
}

// Daemons are the daemons of an OVS, in the order they start.
var Daemons = []string{"ovsdb-server", "ovs-vswitchd"}

// DB is the --db of ovs-vsctl (and Config.OVSDB) for this OVS.
func (o *OVS) DB() string { return "unix:" + filepath.Join(o.Dir, "db.sock") }

// Env points OVS's tools at Dir (OVS_RUNDIR etc.), e.g. for ovs-appctl.
func (o *OVS) Env() []string {
	return []string{"OVS_RUNDIR=" + o.Dir, "OVS_LOGDIR=" + o.Dir, "OVS_DBDIR=" + o.Dir, "OVS_SYSCONFDIR=" + o.Dir}
}

// ovsSchemas are where Debian and source builds install the schema.
var ovsSchemas = []string{"/usr/share/openvswitch/vswitch.ovsschema", "/usr/local/share/openvswitch/vswitch.ovsschema"}

// Start creates the database in dir and starts ovsdb-server and
// ovs-vswitchd (detached, --no-chdir) in network namespace ns ("" = the
// caller's). dir must be short: the socket path is limited to 107 bytes.
// On failure it stops what it started.
func Start(ctx context.Context, dir, ns string) (*OVS, error) {
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("start Open vSwitch: %s is not installed (apt install openvswitch-switch)", tool)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	o := &OVS{Dir: dir, Netns: ns}
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
	fail := func(err error) (*OVS, error) {
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

// Stop stops the daemons (see Stop).
func (o *OVS) Stop() error { return Stop(o.Dir) }

// Stop stops the daemons of the OVS in dir by their pid files (SIGTERM,
// then SIGKILL after 3 s), only when their command line names dir. Missing
// pid files and dead processes are fine.
func Stop(dir string) error {
	var errs []error
	for i := len(Daemons) - 1; i >= 0; i-- {
		if err := pidfile.Stop(filepath.Join(dir, Daemons[i]+".pid"), dir, 3*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
