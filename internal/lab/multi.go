package lab

// A lab of several hosts (`moat lab up NAME --hosts N`):
//
//	NAME-sw:     the "physical" network: a Linux bridge trunk (the VLAN
//	             trunk between the hosts' uplinks, tags passed through) and
//	             a Linux bridge mgmt (the management network, 10.250.0.0/24)
//	NAME-api:    moat server on 10.250.0.1:9696 (eth0 on mgmt)
//	NAME-hostI:  a private Open vSwitch (br-int; br-eth1 holding the uplink
//	             eth1 on trunk) and moat agent --server, with its own token
//	             and --bridge-mappings physnet1:br-eth1; eth0 on mgmt
//	             (10.250.0.10+I)
//	NAME-vmJ:    on host ((J-1) mod N) + 1
//
// The lab's network is a provider VLAN network (physnet1, VLAN 102, as in
// the seed's cloud): a frame between VMs on two hosts leaves br-int with
// the network's local tag, becomes VLAN 102 on br-eth1 and the trunk, and
// gets the other host's local tag on its br-int.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/ovsd"
	"github.com/moat-sg/moat/internal/pgcluster"
)

// The multi-host lab's fixed parts.
const (
	MaxHosts       = 8
	Physnet        = "physnet1"
	PhysBridge     = "br-eth1"
	Uplink         = "eth1" // each host's uplink, a port of br-eth1
	SegmentationID = 102
	VLANRange      = "physnet1:100:199"
	MgmtPrefix     = "10.250.0."
	APIAddr        = MgmtPrefix + "1"
	MultiAPIURL    = "http://" + APIAddr + ":9696"
	trunkBridge    = "trunk"
	mgmtBridge     = "mgmt"
	tokensFile     = "agent-tokens"
	tokenFile      = "token"
)

// MaxReplicas bounds --replicas.
const MaxReplicas = 3

// Host is one host of a lab.
type Host struct {
	Name  string `json:"name"` // its agent's --host, the ports' binding:host_id
	Netns string `json:"netns"`
}

// SwitchNetns is the namespace of a multi-host lab's physical network.
func SwitchNetns(name string) string { return name + "-sw" }

// APINetns is the namespace of a multi-host lab's server.
func APINetns(name string) string { return name + "-api" }

// HostName is the name (and namespace) of a multi-host lab's i-th host
// (1-based).
func HostName(name string, i int) string { return fmt.Sprintf("%s-host%d", name, i) }

// HostStateDir is where the i-th host keeps its OVS, agent log and token.
func HostStateDir(stateDir string, i int) string {
	return filepath.Join(stateDir, fmt.Sprintf("host%d", i))
}

// AgentArgs are the arguments of the i-th host's agent (after the binary).
func AgentArgs(cfg Config, stateDir string, i int) []string {
	dir := HostStateDir(stateDir, i)
	ovs := ovsd.OVS{Dir: dir}
	// Every replica, this host's first in turn: the agents spread over
	// them and move to the next when theirs goes.
	var servers []string
	for k := 0; k < cfg.Replicas; k++ {
		servers = append(servers, ReplicaURL((i-1+k)%cfg.Replicas+1))
	}
	return []string{"agent",
		"--server", strings.Join(servers, ","),
		"--host", HostName(cfg.Name, i),
		"--token-file", filepath.Join(dir, tokenFile),
		"--backend", cfg.Backend,
		"--bridge", "ovs",
		"--ovsdb", ovs.DB(),
		"--bridge-mappings", Physnet + ":" + PhysBridge,
		"--metrics-listen", AgentMetricsAddr(i),
		"--log-file", filepath.Join(dir, LogEventsFile),
	}
}

// AgentMetricsAddr is where the i-th host's agent serves /metrics, on the
// management network.
func AgentMetricsAddr(i int) string { return fmt.Sprintf("%s%d:9697", MgmtPrefix, 10+i) }

// ServerArgs are the arguments of a multi-host lab's server replica i
// (1-based) over the database db.
func ServerArgs(stateDir string, i int, db string) []string {
	return []string{"server",
		"--listen", fmt.Sprintf("0.0.0.0:%d", replicaPort(i)),
		"--db", db,
		"--agent-token-file", filepath.Join(stateDir, tokensFile),
		"--network-vlan-ranges", VLANRange,
	}
}

// replicaPort is the API port of replica i: 9696, 9697, ...
func replicaPort(i int) int { return 9695 + i }

// ReplicaURL is replica i's API on the management network.
func ReplicaURL(i int) string { return fmt.Sprintf("http://%s:%d", APIAddr, replicaPort(i)) }

// ReplicaDir is where replica i keeps its pid and log: the state directory
// for the first, replicaI/ for the others.
func ReplicaDir(stateDir string, i int) string {
	if i == 1 {
		return stateDir
	}
	return filepath.Join(stateDir, fmt.Sprintf("replica%d", i))
}

// replicaDirs lists the state directories of replicas 2.. of a lab.
func replicaDirs(stateDir string) []string {
	dirs, _ := filepath.Glob(filepath.Join(stateDir, "replica[0-9]*"))
	return dirs
}

const (
	pgDir     = "pg"
	dbURLFile = "db-url"
)

// serverDB is the database of a multi-host lab's servers: PostgreSQL's
// URL when the lab started one, else its SQLite file.
func serverDB(stateDir string) string {
	if b, err := os.ReadFile(filepath.Join(stateDir, dbURLFile)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return DBURL(stateDir)
}

// startPostgres starts the lab's PostgreSQL (a unix socket in the state
// directory only: no namespace is configured for it), creates the
// database, upgrades its schema and records its URL.
func startPostgres(ctx context.Context, cfg Config) (string, error) {
	c, err := pgcluster.StartWith(pgcluster.Options{Dir: filepath.Join(cfg.StateDir, pgDir), SocketOnly: true})
	if err != nil {
		return "", fmt.Errorf("start PostgreSQL for the replicas: %w", err)
	}
	db, err := c.NewDatabase(ctx)
	if err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, cfg.Moat, "db", "upgrade", "--db", db).CombinedOutput(); err != nil {
		return "", fmt.Errorf("moat db upgrade: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(cfg.StateDir, dbURLFile), []byte(db+"\n"), 0o600); err != nil {
		return "", err
	}
	return db, nil
}

// stopPostgres stops the lab's PostgreSQL, if it started one.
func stopPostgres(stateDir string) error {
	dir := filepath.Join(stateDir, pgDir)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return pgcluster.StopDir(dir)
}

// upMulti builds a lab of cfg.Hosts hosts.
func upMulti(ctx context.Context, cfg Config, step func(string, ...any)) (lab *Lab, err error) {
	sw, apiNS := SwitchNetns(cfg.Name), APINetns(cfg.Name)
	lab = &Lab{API: MultiAPIURL, APINetns: apiNS, StateDir: cfg.StateDir, Backend: cfg.Backend}

	step("creating the physical network (namespace %s: bridges %s and %s)", sw, trunkBridge, mgmtBridge)
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	swh, closeSW, err := newNetns(ctx, sw)
	if err != nil {
		return nil, err
	}
	defer closeSW()
	// The switch only switches: its frames need no netfilter.
	for _, key := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
		_ = sysctl(sw, key, "0")
	}
	for _, br := range []string{trunkBridge, mgmtBridge} {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = br
		if err := swh.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("create bridge %s in %s: %w", br, sw, err)
		}
		if err := linkUp(swh, br); err != nil {
			return nil, err
		}
	}

	step("creating namespace %s for moat server (%s)", apiNS, MultiAPIURL)
	apih, closeAPI, err := newNetns(ctx, apiNS)
	if err != nil {
		return nil, err
	}
	defer closeAPI()
	if err := plugInto(swh, apih, apiNS, "api-m", mgmtBridge, "eth0", APIAddr+"/24"); err != nil {
		return nil, err
	}

	hostHandles := make([]*netlink.Handle, cfg.Hosts)
	tokens := make([]string, cfg.Hosts)
	for i := 1; i <= cfg.Hosts; i++ {
		name := HostName(cfg.Name, i)
		dir := HostStateDir(cfg.StateDir, i)
		step("host %s: namespace, uplink %s on the trunk, Open vSwitch (br-int, %s)", name, Uplink, PhysBridge)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		hh, closeHost, err := newHostNetns(ctx, name, step)
		if err != nil {
			return nil, err
		}
		defer closeHost()
		hostHandles[i-1] = hh
		if err := plugInto(swh, hh, name, fmt.Sprintf("h%d-m", i), mgmtBridge, "eth0", fmt.Sprintf("%s%d/24", MgmtPrefix, 10+i)); err != nil {
			return nil, err
		}
		if err := plugInto(swh, hh, name, fmt.Sprintf("h%d-t", i), trunkBridge, Uplink, ""); err != nil {
			return nil, err
		}
		ovs, err := startHostOVS(ctx, cfg, dir, name)
		if err != nil {
			return nil, err
		}
		// As an operator does before starting Neutron's agent: the
		// physical bridge with the uplink in it. fail_mode secure: it
		// passes nothing until the agent's flows say how.
		if _, err := (dataplane.Netns{Name: name}).Run(ctx, nil, "ovs-vsctl", "--db="+ovs.DB(), "--timeout=10",
			"--may-exist", "add-br", PhysBridge, "--", "set", "Bridge", PhysBridge, "datapath_type=netdev", "fail_mode=secure",
			"--", "--may-exist", "add-port", PhysBridge, Uplink); err != nil {
			return nil, fmt.Errorf("host %s: create %s with %s: %w", name, PhysBridge, Uplink, err)
		}
		tok, err := randomToken()
		if err != nil {
			return nil, err
		}
		tokens[i-1] = tok
		if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte(tok+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s's token: %w", name, err)
		}
		lab.Hosts = append(lab.Hosts, Host{Name: name, Netns: name})
	}
	var tb strings.Builder
	for i, tok := range tokens {
		fmt.Fprintf(&tb, "%s %s\n", HostName(cfg.Name, i+1), tok)
	}
	if err := os.WriteFile(filepath.Join(cfg.StateDir, tokensFile), []byte(tb.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write the agent tokens: %w", err)
	}

	db := DBURL(cfg.StateDir)
	if cfg.Replicas > 1 {
		step("starting PostgreSQL (a unix socket in %s) for %d server replicas", filepath.Join(cfg.StateDir, pgDir), cfg.Replicas)
		if db, err = startPostgres(ctx, cfg); err != nil {
			return nil, err
		}
	}
	var exited <-chan struct{}
	for k := 1; k <= cfg.Replicas; k++ {
		step("starting moat server %s in %s", ReplicaURL(k), apiNS)
		ex, err := startReplica(ctx, cfg, k, db)
		if err != nil {
			return nil, err
		}
		if k == 1 {
			exited = ex
		}
		lab.Replicas = append(lab.Replicas, ReplicaURL(k))
	}
	api := NewClient(apiNS, "http://127.0.0.1:9696")
	defer api.Close()
	for i := 1; i <= cfg.Hosts; i++ {
		step("starting moat agent on %s (--server %s)", HostName(cfg.Name, i), MultiAPIURL)
		if err := StartAgent(cfg, i); err != nil {
			return nil, err
		}
	}

	step("creating network %s (VLAN %d on %s), subnet %s, security group %s and %d port(s)", NetworkName, SegmentationID, Physnet, CIDR, GroupName, cfg.VMs)
	nw, err := api.createNetworkWith(ctx, map[string]any{"name": NetworkName,
		"provider:network_type": "vlan", "provider:physical_network": Physnet, "provider:segmentation_id": SegmentationID})
	if err != nil {
		return nil, err
	}
	if err := populate(ctx, api, lab, cfg, nw, step, func(i int) (string, *netlink.Handle) {
		h := (i-1)%cfg.Hosts + 1
		return HostName(cfg.Name, h), hostHandles[h-1]
	}); err != nil {
		return nil, err
	}
	if err := waitActive(ctx, api, lab, exited, cfg.Timeout, step); err != nil {
		return nil, err
	}
	step("up: %d host(s), %d VM(s), every port ACTIVE", cfg.Hosts, len(lab.VMs))
	return lab, nil
}

// StartAgent starts the i-th host's agent of a multi-host lab (again,
// after it stopped or was killed).
func StartAgent(cfg Config, i int) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if i < 1 || i > cfg.Hosts {
		return fmt.Errorf("host %d: lab %s has hosts 1..%d", i, cfg.Name, cfg.Hosts)
	}
	_, err := startProcess(cfg.Moat, HostName(cfg.Name, i), AgentArgs(cfg, cfg.StateDir, i), HostStateDir(cfg.StateDir, i))
	return err
}

// AgentPidFile is where the i-th host's agent keeps its pid.
func AgentPidFile(stateDir string, i int) string {
	return filepath.Join(HostStateDir(stateDir, i), moatPid)
}

// AgentLogFile is the i-th host's agent log.
func AgentLogFile(stateDir string, i int) string {
	return filepath.Join(HostStateDir(stateDir, i), moatLog)
}

// newNetns creates a namespace with lo up and returns a netlink handle in it.
func newNetns(ctx context.Context, name string) (*netlink.Handle, func(), error) {
	if err := dataplane.AddNetns(ctx, name); err != nil {
		return nil, nil, err
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	h, err := netlink.NewHandleAt(ns)
	ns.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	if err := linkUp(h, "lo"); err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return h, h.Close, nil
}

// newHostNetns is newNetns for a host: the firewall sees bridged frames
// only with bridge-nf-call-ip(6)tables (per namespace; a new one starts
// with 1, but say it). Missing: no br_netfilter, warned about.
func newHostNetns(ctx context.Context, name string, step func(string, ...any)) (*netlink.Handle, func(), error) {
	h, closeFn, err := newNetns(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	for _, key := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
		if err := sysctl(name, key, "1"); err != nil {
			step("WARNING: %v: the firewall will not see bridged traffic (load br_netfilter on the host)", err)
		}
	}
	return h, closeFn, nil
}

// startHostOVS starts a host's private Open vSwitch (state in dir) and
// creates its br-int with the userspace datapath; the agent does the
// wiring.
func startHostOVS(ctx context.Context, cfg Config, dir, ns string) (*ovsd.OVS, error) {
	ovs, err := ovsd.Start(ctx, dir, ns)
	if err != nil {
		return nil, err
	}
	w, err := wiring.New(ctx, wiring.Config{Mode: wiring.ModeOVS, OVSDB: ovs.DB(), DatapathType: "netdev", Netns: ns,
		Logger: slog.New(slog.NewTextHandler(cfg.Progress, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, err
	}
	w.Close()
	return ovs, nil
}

// plugInto joins namespace ns to a bridge of the switch: a veth swEnd
// (in the bridge) / dev (in ns, with addr when not "").
func plugInto(swh, h *netlink.Handle, ns, swEnd, bridge, dev, addr string) error {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer target.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = swEnd
	if err := swh.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: dev, PeerNamespace: netlink.NsFd(target)}); err != nil {
		return fmt.Errorf("create veth %s / %s %s: %w", swEnd, ns, dev, err)
	}
	l, err := swh.LinkByName(swEnd)
	if err != nil {
		return err
	}
	br, err := swh.LinkByName(bridge)
	if err != nil {
		return err
	}
	if err := swh.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("put %s into %s: %w", swEnd, bridge, err)
	}
	if err := swh.LinkSetUp(l); err != nil {
		return err
	}
	d, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("%s: look up %s: %w", ns, dev, err)
	}
	if addr != "" {
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			return err
		}
		if err := h.AddrAdd(d, a); err != nil {
			return fmt.Errorf("%s: add %s to %s: %w", ns, addr, dev, err)
		}
	}
	if err := h.LinkSetUp(d); err != nil {
		return fmt.Errorf("%s: set %s up: %w", ns, dev, err)
	}
	// The userspace OVS on the other side of the trunk does not complete
	// checksums it gets over AF_PACKET (see addVM).
	if _, err := (dataplane.Netns{Name: ns}).Run(context.Background(), nil, "ethtool", "-K", dev, "tx", "off"); err != nil {
		return fmt.Errorf("%s: disable checksum offload on %s: %w", ns, dev, err)
	}
	return nil
}

// populate creates the subnet, the group and a port per VM (on the host
// hostOf names), and the VMs wired to them.
func populate(ctx context.Context, api *Client, lab *Lab, cfg Config, nw apiNetwork, step func(string, ...any), hostOf func(i int) (string, *netlink.Handle)) error {
	sn, err := api.createSubnet(ctx, NetworkName, nw.ID, CIDR)
	if err != nil {
		return err
	}
	sg, err := api.createGroup(ctx, GroupName, "moat lab: egress only until a rule says otherwise")
	if err != nil {
		return err
	}
	lab.NetworkID, lab.SubnetID, lab.SecurityGroupID, lab.MTU = nw.ID, sn.ID, sg.ID, nw.MTU
	if sn.GatewayIP != nil {
		lab.Gateway = *sn.GatewayIP
	}
	_, ipnet, err := net.ParseCIDR(sn.CIDR)
	if err != nil {
		return fmt.Errorf("subnet cidr %q: %w", sn.CIDR, err)
	}
	prefix, _ := ipnet.Mask.Size()
	for i := 1; i <= cfg.VMs; i++ {
		name := VMName(cfg.Name, i)
		host, hh := hostOf(i)
		p, err := api.createPort(ctx, map[string]any{
			"name": name, "network_id": nw.ID, "security_groups": []string{sg.ID},
			"binding:host_id": host, "device_owner": DeviceOwner, "device_id": name,
		})
		if err != nil {
			return err
		}
		ip := ""
		for _, f := range p.FixedIPs {
			if f.SubnetID == sn.ID {
				ip = f.IPAddress
			}
		}
		if ip == "" {
			return fmt.Errorf("port %s (%s) got no address on subnet %s", p.ID, name, sn.ID)
		}
		v := VM{Name: name, Netns: name, Host: host, PortID: p.ID, IP: ip, MAC: p.MAC, Tap: hybrid.TapName(p.ID)}
		step("VM %s on %s: %s %s, port %s, tap %s", name, host, v.IP, v.MAC, v.PortID, v.Tap)
		if err := addVM(ctx, hh, v, prefix, lab.Gateway, nw.MTU); err != nil {
			return fmt.Errorf("VM %s: %w", name, err)
		}
		lab.VMs = append(lab.VMs, v)
	}
	return nil
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make an agent token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// hostDirs lists the host state directories of a lab (multi-host only).
func hostDirs(stateDir string) []string {
	dirs, _ := filepath.Glob(filepath.Join(stateDir, "host[0-9]*"))
	return dirs
}

// StartServer starts a multi-host lab's (first) server again (after it
// stopped or was killed) and waits until its API answers.
func StartServer(ctx context.Context, cfg Config) error { return StartReplica(ctx, cfg, 1) }

// StartReplica starts server replica i of a multi-host lab again and waits
// until its API answers.
func StartReplica(ctx context.Context, cfg Config, i int) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if i < 1 || i > cfg.Replicas {
		return fmt.Errorf("replica %d: lab %s has replicas 1..%d", i, cfg.Name, cfg.Replicas)
	}
	_, err := startReplica(ctx, cfg, i, serverDB(cfg.StateDir))
	return err
}

// startReplica starts server replica i over db and waits for its API.
func startReplica(ctx context.Context, cfg Config, i int, db string) (<-chan struct{}, error) {
	dir := ReplicaDir(cfg.StateDir, i)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	apiNS := APINetns(cfg.Name)
	exited, err := startProcess(cfg.Moat, apiNS, ServerArgs(cfg.StateDir, i, db), dir)
	if err != nil {
		return nil, err
	}
	api := NewClient(apiNS, fmt.Sprintf("http://127.0.0.1:%d", replicaPort(i)))
	defer api.Close()
	if err := waitAPI(ctx, api, exited, cfg.Timeout); err != nil {
		return nil, fmt.Errorf("server replica %d: %w", i, err)
	}
	return exited, nil
}

// ReplicaPidFile is where replica i keeps its pid.
func ReplicaPidFile(stateDir string, i int) string {
	return filepath.Join(ReplicaDir(stateDir, i), moatPid)
}
