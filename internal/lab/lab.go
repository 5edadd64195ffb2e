// Package lab builds throw-away "VMs" (network namespaces) wired to ports
// of a moat of their own, so that a newcomer can watch security groups
// work and the end-to-end tests can drive real packets:
//
//	NAME-host: moat allinone (API on 127.0.0.1:9696), a private Open vSwitch
//	           (userspace datapath) as br-int, the ports' tap/qbr/qvb/qvo
//	NAME-vmI:  eth0, the peer of the port's tap (a veth), with the port's
//	           MAC and IP
//
// Nothing is configured in the initial namespace: the lab only creates
// namespaces there. State (OVS database, sockets, logs, pid files, moat's
// SQLite database and log) lives in /run/moat-lab/NAME.
package lab

import (
	"context"
	"errors"
	"fmt"
	"github.com/moat-sg/moat/internal/agent"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/ovsd"
	"github.com/moat-sg/moat/internal/pidfile"
)

// DefaultBackend is the lab's firewall backend unless --backend says
// otherwise: nftables, as for allinone (docs/agent.md, "Which backend by
// default").
const DefaultBackend = agent.NFTablesLayout

// Fixed parts of every lab.
const (
	StateRoot   = "/run/moat-lab"
	APIListen   = "127.0.0.1:9696"
	APIURL      = "http://" + APIListen
	CIDR        = "192.168.1.0/24"
	GroupName   = "lab"
	NetworkName = "lab"
	DeviceOwner = "compute:lab"
	MaxVMs      = 50
)

// Config describes a lab to build.
type Config struct {
	Name string
	VMs  int
	// Hosts is the number of hosts: 1 (default) runs moat allinone in
	// NAME-host; more run moat server in NAME-api and an agent per host
	// NAME-host1..N, joined by a provider VLAN (multi.go).
	Hosts int
	// Replicas is the number of moat servers of a multi-host lab (on a
	// PostgreSQL the lab starts when more than 1); default 1 (SQLite).
	Replicas int
	Backend  string // an agent.Backend; default DefaultBackend
	// Moat is the moat binary run inside NAME-host; default the running one.
	Moat string
	// StateDir defaults to /run/moat-lab/NAME.
	StateDir string
	// Timeout bounds the wait for the API and for every port to become
	// ACTIVE; default 60 s.
	Timeout time.Duration
	// KeepOnFailure leaves a failed lab in place for inspection.
	KeepOnFailure bool
	// Progress receives one line per step (e.g. os.Stderr); nil: silent.
	Progress io.Writer
}

// Lab is a lab that is up. Its JSON is what `moat lab up --json` prints.
type Lab struct {
	API string `json:"api"`
	// APINetns is where API reaches the server (NAME-host, or NAME-api
	// with several hosts).
	APINetns string `json:"api_netns"`
	// HostNetns is the single host's namespace ("" with several hosts).
	HostNetns string `json:"host_netns,omitempty"`
	Hosts     []Host `json:"hosts"`
	// Replicas are the servers' API URLs (several hosts only).
	Replicas        []string `json:"replicas,omitempty"`
	VMs             []VM     `json:"vms"`
	StateDir        string   `json:"state_dir"`
	NetworkID       string   `json:"network_id"`
	SubnetID        string   `json:"subnet_id"`
	SecurityGroupID string   `json:"security_group_id"`
	Gateway         string   `json:"gateway_ip,omitempty"`
	MTU             int      `json:"mtu"`
	Backend         string   `json:"backend"`
}

// VM is one VM namespace and its port.
type VM struct {
	Name   string `json:"name"`
	Netns  string `json:"netns"`
	Host   string `json:"host"` // the host (namespace) of its port
	PortID string `json:"port_id"`
	IP     string `json:"ip"`
	MAC    string `json:"mac"`
	Tap    string `json:"tap"`
}

// HostNetns is the name of a lab's host namespace.
func HostNetns(name string) string { return name + "-host" }

// VMName is the name (and namespace) of a lab's i-th VM (1-based).
func VMName(name string, i int) string { return fmt.Sprintf("%s-vm%d", name, i) }

// StateDir is the default state directory of a lab.
func StateDir(name string) string { return filepath.Join(StateRoot, name) }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,19}$`)

// ValidName accepts names usable in namespace names and paths.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("lab name %q: want 1-20 of a-z 0-9 _ - (starting with a letter or digit)", name)
	}
	return nil
}

// Pid files and logs in the state directory.
const (
	moatPid = "moat.pid"
	moatLog = "moat.log"
	moatDB  = "moat.db"
)

// DaemonArgs are the arguments of the moat process the lab starts inside
// NAME-host (after the binary).
//
// ┌──────────────────────────────────────────────────────────────────────┐
// │ THE AGENT'S FLAGS: `moat allinone` is the API server's flags plus    │
// │ --host (the agent's host name, = the ports' binding:host_id),        │
// │ --backend, --bridge ovs and --ovsdb (the lab's private OVS). br-int  │
// │ already exists (datapath_type=netdev) when allinone starts.          │
// └──────────────────────────────────────────────────────────────────────┘
func DaemonArgs(cfg Config, stateDir string) []string {
	server := []string{"--listen", APIListen, "--db", DBURL(stateDir)}
	ovs := ovsd.OVS{Dir: stateDir}
	return append(append([]string{"allinone"}, server...),
		"--host", HostNetns(cfg.Name),
		"--backend", cfg.Backend,
		"--bridge", "ovs",
		"--ovsdb", ovs.DB(),
		"--log-file", filepath.Join(stateDir, LogEventsFile),
	)
}

// LogEventsFile is where a lab host's agent writes the packets its
// security-group log rules report (moat logs --file).
const LogEventsFile = "log-events.jsonl"

func (c *Config) defaults() error {
	if err := ValidName(c.Name); err != nil {
		return err
	}
	if c.VMs < 1 || c.VMs > MaxVMs {
		return fmt.Errorf("--vms %d: want 1..%d", c.VMs, MaxVMs)
	}
	if c.Hosts == 0 {
		c.Hosts = 1
	}
	if c.Hosts < 1 || c.Hosts > MaxHosts {
		return fmt.Errorf("--hosts %d: want 1..%d", c.Hosts, MaxHosts)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > MaxReplicas {
		return fmt.Errorf("--replicas %d: want 1..%d", c.Replicas, MaxReplicas)
	}
	if c.Replicas > 1 && c.Hosts < 2 {
		return fmt.Errorf("--replicas %d: server replicas need a lab of several hosts (--hosts 2 or more)", c.Replicas)
	}
	if c.Backend == "" {
		c.Backend = string(DefaultBackend)
	}
	if !agent.Backend(c.Backend).Valid() {
		return fmt.Errorf("--backend %q: want one of %s, %s, %s", c.Backend, agent.IPTablesLegacy, agent.IPTablesNFT, agent.NFTablesLayout)
	}
	if c.Moat == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the moat binary: %w", err)
		}
		c.Moat = exe
	}
	if c.StateDir == "" {
		c.StateDir = StateDir(c.Name)
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// Up builds the lab. On failure it tears down what it built (unless
// KeepOnFailure) and says where the logs were.
func Up(ctx context.Context, cfg Config) (lab *Lab, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("moat lab needs root (it creates network namespaces)")
	}
	for _, tool := range []string{"ip", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("moat lab needs %s: apt install iproute2 openvswitch-switch ethtool", tool)
		}
	}
	host := HostNetns(cfg.Name)
	for _, ns := range []string{host, SwitchNetns(cfg.Name), HostName(cfg.Name, 1)} {
		if dataplane.NetnsExists(ns) {
			return nil, fmt.Errorf("lab %s exists (namespace %s): run `moat lab down %s` first", cfg.Name, ns, cfg.Name)
		}
	}
	if _, err := os.Stat(cfg.StateDir); err == nil {
		return nil, fmt.Errorf("lab %s: %s exists (left by a lab that did not come down?): run `moat lab down %s` first", cfg.Name, cfg.StateDir, cfg.Name)
	}
	step := func(format string, a ...any) {
		fmt.Fprintf(cfg.Progress, "lab %s: %s\n", cfg.Name, fmt.Sprintf(format, a...))
	}
	defer func() {
		if err == nil {
			return
		}
		logs := fmt.Sprintf(" (logs: %s)", cfg.StateDir)
		if cfg.KeepOnFailure {
			err = fmt.Errorf("%w%s; left in place: `moat lab down %s` removes it", err, logs, cfg.Name)
			return
		}
		if tail := LogTail(LogFile(cfg.StateDir), 10); tail != "" {
			err = fmt.Errorf("%w\nlast lines of %s:\n%s", err, moatLog, tail)
		}
		step("failed, tearing down what was built")
		if derr := Down(context.Background(), cfg.Name, cfg.StateDir); derr != nil {
			err = fmt.Errorf("%w; tearing down also failed: %v", err, derr)
		}
	}()

	if cfg.Hosts > 1 {
		return upMulti(ctx, cfg, step)
	}
	step("creating namespace %s", host)
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	hh, closeHost, err := newHostNetns(ctx, host, step)
	if err != nil {
		return nil, err
	}
	defer closeHost()

	step("starting Open vSwitch (userspace datapath) in %s", host)
	if _, err := startHostOVS(ctx, cfg, cfg.StateDir, host); err != nil {
		return nil, err
	}

	lab = &Lab{API: APIURL, APINetns: host, HostNetns: host, Hosts: []Host{{Name: host, Netns: host}}, StateDir: cfg.StateDir, Backend: cfg.Backend}
	step("starting moat allinone (API and agent) in %s", host)
	exited, err := startDaemon(cfg, host)
	if err != nil {
		return nil, err
	}
	api := NewClient(host, APIURL)
	defer api.Close()
	if err := waitAPI(ctx, api, exited, cfg.Timeout); err != nil {
		return nil, err
	}

	step("creating network %s, subnet %s, security group %s and %d port(s)", NetworkName, CIDR, GroupName, cfg.VMs)
	nw, err := api.createNetwork(ctx, NetworkName)
	if err != nil {
		return nil, err
	}
	if err := populate(ctx, api, lab, cfg, nw, step, func(int) (string, *netlink.Handle) { return host, hh }); err != nil {
		return nil, err
	}

	if err := waitActive(ctx, api, lab, exited, cfg.Timeout, step); err != nil {
		return nil, err
	}
	step("up: %d VM(s), every port ACTIVE", len(lab.VMs))
	return lab, nil
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// addVM creates the VM namespace and the veth tap (in the host
// namespace, left down for the agent) / eth0 (in the VM, configured).
func addVM(ctx context.Context, hh *netlink.Handle, v VM, prefix int, gateway string, mtu int) error {
	if err := dataplane.AddNetns(ctx, v.Netns); err != nil {
		return err
	}
	vmNS, err := netns.GetFromName(v.Netns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", v.Netns, err)
	}
	defer vmNS.Close()
	vh, err := netlink.NewHandleAt(vmNS)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", v.Netns, err)
	}
	defer vh.Close()
	mac, err := net.ParseMAC(v.MAC)
	if err != nil {
		return fmt.Errorf("port MAC %q: %w", v.MAC, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = v.Tap
	// As libvirt does: the tap's MAC is the VM's with fe: first, so that
	// the bridge never takes the VM's address as its own.
	attrs.HardwareAddr = append(net.HardwareAddr{0xfe}, mac[1:]...)
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(vmNS), PeerHardwareAddr: mac}
	if mtu > 0 {
		veth.MTU, veth.PeerMTU = mtu, uint32(mtu)
	}
	if err := hh.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s / %s eth0: %w", v.Tap, v.Netns, err)
	}
	if err := linkUp(vh, "lo"); err != nil {
		return err
	}
	eth0, err := vh.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("look up eth0: %w", err)
	}
	addr, err := netlink.ParseAddr(fmt.Sprintf("%s/%d", v.IP, prefix))
	if err != nil {
		return err
	}
	if err := vh.AddrAdd(eth0, addr); err != nil {
		return fmt.Errorf("add %s to eth0: %w", addr, err)
	}
	if err := vh.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("set eth0 up: %w", err)
	}
	if gateway != "" {
		gw := net.ParseIP(gateway)
		if err := vh.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw}); err != nil {
			return fmt.Errorf("default route via %s: %w", gateway, err)
		}
	}
	// OVS's userspace datapath does not complete CHECKSUM_PARTIAL packets
	// it receives over AF_PACKET: without this, TCP between VMs times out.
	if _, err := (dataplane.Netns{Name: v.Netns}).Run(ctx, nil, "ethtool", "-K", "eth0", "tx", "off"); err != nil {
		return fmt.Errorf("disable checksum offload on eth0 (TCP would fail through the userspace OVS): %w", err)
	}
	return nil
}

// PidFile is where a lab's moat process id is kept (Down stops it).
func PidFile(stateDir string) string { return filepath.Join(stateDir, moatPid) }

// LogFile is the lab's moat log.
func LogFile(stateDir string) string { return filepath.Join(stateDir, moatLog) }

// DBURL is the --db of the lab's moat.
func DBURL(stateDir string) string { return "sqlite://" + filepath.Join(stateDir, moatDB) }

// Start starts the lab's moat again the way Up started it, after it
// stopped or was killed (the end-to-end tests kill it with SIGKILL), and
// waits until its API answers. cfg is the Config the lab was built with.
func Start(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	host := HostNetns(cfg.Name)
	if !dataplane.NetnsExists(host) {
		return fmt.Errorf("lab %s is not up (no namespace %s)", cfg.Name, host)
	}
	exited, err := startDaemon(cfg, host)
	if err != nil {
		return err
	}
	api := NewClient(host, APIURL)
	defer api.Close()
	return waitAPI(ctx, api, exited, cfg.Timeout)
}

// startDaemon starts moat in the host namespace, detached into its own
// session with its output in moat.log and its pid in moat.pid. exited is
// closed when it ends while this process still runs.
func startDaemon(cfg Config, host string) (exited <-chan struct{}, err error) {
	return startProcess(cfg.Moat, host, DaemonArgs(cfg, cfg.StateDir), cfg.StateDir)
}

// startProcess starts moat with args in namespace ns, detached into its
// own session, with its output in dir/moat.log and its pid in
// dir/moat.pid.
func startProcess(moat, ns string, moatArgs []string, dir string) (exited <-chan struct{}, err error) {
	logf, err := os.OpenFile(filepath.Join(dir, moatLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open moat's log: %w", err)
	}
	defer logf.Close()
	args := append([]string{"netns", "exec", ns, moat}, moatArgs...)
	cmd := exec.Command("ip", args...) // `ip netns exec` execs: the pid is moat's
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd, err)
	}
	pidfile := filepath.Join(dir, moatPid)
	if err := os.WriteFile(pidfile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("write %s: %w", pidfile, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return done, nil
}

func waitAPI(ctx context.Context, api *Client, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = api.Do(pctx, "GET", "/", nil, nil)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("moat exited before its API answered")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("moat's API did not answer at %s within %s: %v", APIURL, timeout, last)
		}
	}
}

// waitActive polls the ports until the agent has set them all ACTIVE.
func waitActive(ctx context.Context, api *Client, lab *Lab, exited <-chan struct{}, timeout time.Duration, step func(string, ...any)) error {
	deadline := time.Now().Add(timeout)
	lastReport, lastCount := time.Now(), -1
	for {
		var down []string
		for _, v := range lab.VMs {
			p, err := api.port(ctx, v.PortID)
			if err != nil {
				return err
			}
			if p.Status != "ACTIVE" {
				down = append(down, fmt.Sprintf("%s %s", v.Name, p.Status))
			}
		}
		active := len(lab.VMs) - len(down)
		if len(down) == 0 {
			return nil
		}
		if active != lastCount || time.Since(lastReport) > 5*time.Second {
			step("waiting for the agent: %d/%d port(s) ACTIVE", active, len(lab.VMs))
			lastReport, lastCount = time.Now(), active
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ports not ACTIVE after %s: %s (is the agent wiring them? see %s)", timeout, strings.Join(down, ", "), filepath.Join(lab.StateDir, moatLog))
		}
		select {
		case <-exited:
			return errors.New("moat exited while the ports were being wired")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Down stops the lab's moat and Open vSwitch, deletes its namespaces and
// its state directory. It is idempotent and works on half-built labs.
func Down(ctx context.Context, name, stateDir string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if stateDir == "" {
		stateDir = StateDir(name)
	}
	var errs []error
	// moat first (the hosts' agents, then the server or allinone), so
	// that no agent reacts to vanishing devices.
	hosts := hostDirs(stateDir)
	for _, dir := range hosts {
		if err := pidfile.Stop(filepath.Join(dir, moatPid), stateDir, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop the agent of %s: %w", filepath.Base(dir), err))
		}
	}
	if err := pidfile.Stop(filepath.Join(stateDir, moatPid), stateDir, 5*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("stop moat: %w", err))
	}
	for _, dir := range replicaDirs(stateDir) {
		if err := pidfile.Stop(filepath.Join(dir, moatPid), stateDir, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop the server of %s: %w", filepath.Base(dir), err))
		}
	}
	if err := stopPostgres(stateDir); err != nil {
		errs = append(errs, fmt.Errorf("stop PostgreSQL: %w", err))
	}
	for _, dir := range append(hosts, stateDir) {
		if err := ovsd.Stop(dir); err != nil {
			errs = append(errs, fmt.Errorf("stop Open vSwitch (%s): %w", dir, err))
		}
	}
	nss, err := labNetns(name)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range nss { // VMs first, the host last
		if err := dataplane.DeleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(stateDir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", stateDir, err))
	}
	return errors.Join(errs...)
}

// LogTail returns the last n lines of a file, or "".
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
