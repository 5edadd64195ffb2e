// Package wiring plugs Neutron ports into a host the way os-vif does for
// Nova in the OVS "hybrid" mode:
//
//	tapX (the hypervisor's) ── qbrX (Linux bridge) ── qvbX ═veth═ qvoX ── br-int (OVS, tag = the network's local VLAN)
//
// where X is the port id's first 11 characters. The Linux bridge qbrX exists
// so that netfilter (bridge-nf-call-iptables) sees the VM's frames; the
// firewall's physdev rules match tapX.
//
// Plug builds qbrX, the veth and qvoX's br-int port but leaves the tap
// alone: the agent calls AttachTap only after the port's firewall chains
// exist, so a port never passes traffic unfiltered (fail closed). Unplug
// removes what Plug built and detaches — never deletes — the tap, which the
// hypervisor owns. Plugged reports what is wired, so that a restarted agent
// recovers its local VLAN tags (VLANs.Seed) and removes leftovers.
//
// br-int is Open vSwitch when ovsdb-server answers (ovs-vsctl; Go OVSDB
// libraries are not used), otherwise — or when the operator asks — a plain
// Linux bridge. The Linux bridge has no VLAN isolation: every network on the
// host shares one L2 segment (the kernels this runs on may also lack
// CONFIG_BRIDGE_VLAN_FILTERING), and br-int's frames pass netfilter a third
// time when bridge-nf-call-iptables is on.
//
// Links are configured over netlink (github.com/vishvananda/netlink) in the
// calling process's network namespace, or in Config.Netns.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/hybrid"
)

// Kinds of integration bridge.
const (
	KindOVS         = "ovs"
	KindLinuxBridge = "linuxbridge"
)

// Modes of Config.Mode.
const (
	ModeAuto  = "auto"  // OVS when ovsdb-server answers, else a Linux bridge
	ModeOVS   = "ovs"   // OVS or an error
	ModeLinux = "linux" // a Linux bridge br-int, no VLAN isolation
)

// Port is what Plug needs to know about a port.
type Port struct {
	ID        string // Neutron port id (device names use ID[:11])
	MAC       string // the VM's MAC (external_ids:attached-mac)
	NetworkID string // the port's network (recorded for Plugged)
	Tag       int    // local VLAN of the network on br-int (OVS only): 1..4094, or DeadVLAN
	MTU       int    // the network's MTU; 0 leaves the kernel's default
}

// Plugged is a port found wired on this host.
type Plugged struct {
	// PortID is the full port id when moat or Neutron recorded it (qbr
	// alias, OVS external_ids:iface-id), else the 11-character DevID.
	PortID    string
	DevID     string // the port id prefix in the device names
	NetworkID string // "" when unknown
	MAC       string // attached MAC, "" when unknown
	Tag       int    // the qvo port's OVS tag; 0 for none (and on a Linux bridge br-int)
	MTU       int    // the MTU recorded at Plug; 0 when unknown

	Bridge      bool // qbrX exists
	Veth        bool // qvbX/qvoX exist
	InBrInt     bool // qvoX is a port of br-int
	TapAttached bool // tapX exists and is a port of qbrX
}

// Complete reports whether everything Plug builds is there.
func (p Plugged) Complete() bool { return p.Bridge && p.Veth && p.InBrInt }

// Wirer plugs ports into this host's integration bridge. Implementations
// are safe for concurrent use; every method is idempotent.
type Wirer interface {
	// Kind is KindOVS or KindLinuxBridge.
	Kind() string
	// Plug builds qbrX, qvbX/qvoX and qvoX's port on br-int (with the
	// port's external_ids and tag on OVS), sets the MTU and brings the
	// links up. It does not touch the tap. Plugging a plugged port brings
	// it to p (e.g. a new tag).
	Plug(ctx context.Context, p Port) error
	// AttachTap makes tapX a port of qbrX (with the port's MTU, IPv6 off,
	// up) and reports whether tapX exists; false, nil means "not yet".
	// The port must be plugged.
	AttachTap(ctx context.Context, portID string) (attached bool, err error)
	// AdoptTap renames a hypervisor's tap named dev to hybrid.TapName(portID), so
	// that the firewall's physdev rules match it. It is a no-op when dev
	// already has that name. (`moat plug --tap` uses the package-level
	// AdoptTap, which needs no Wirer.)
	AdoptTap(ctx context.Context, portID, dev string) error
	// Unplug detaches tapX from qbrX (it stays, the hypervisor owns it),
	// removes qvoX from br-int and deletes the veth and qbrX. portID may
	// be the full id or the DevID of a Plugged leftover.
	Unplug(ctx context.Context, portID string) error
	// Plugged returns the ports wired on this host, sorted by DevID.
	Plugged(ctx context.Context) ([]Plugged, error)
	// Close releases the netlink handle; it changes nothing on the host.
	Close() error
}

// Config chooses and configures the integration bridge.
type Config struct {
	// Mode is ModeAuto (default), ModeOVS or ModeLinux.
	Mode string
	// Bridge is the integration bridge's name; default "br-int".
	Bridge string
	// OVSDB is ovs-vsctl's --db (e.g. "unix:/run/openvswitch/db.sock");
	// "" uses ovs-vsctl's default.
	OVSDB string
	// DatapathType is given to a br-int created here: "system" (the
	// kernel datapath, default) or "netdev" (userspace, for labs and
	// hosts without the openvswitch module). An existing br-int keeps its
	// own.
	DatapathType string
	// Netns names a network namespace (/run/netns/NAME) to wire in
	// instead of the calling process's; for tests and labs.
	Netns string
	// Exec runs ovs-vsctl; default dataplane.Netns{Name: Netns} when
	// Netns is set, else dataplane.Host{}.
	Exec dataplane.Exec
	// Timeout bounds each ovs-vsctl call (its --timeout); default 10s.
	Timeout time.Duration
	// Logger receives warnings (the Linux bridge fallback); default slog.Default().
	Logger *slog.Logger
}

// ErrNoOVS means ovsdb-server did not answer (or ovs-vsctl is missing).
var ErrNoOVS = errors.New("Open vSwitch is not available")

// New returns the Wirer for cfg, creating br-int when it is missing. In
// ModeAuto it uses OVS when ovsdb-server answers and a Linux bridge
// otherwise (logging loudly that networks are not isolated); an OVS that
// answers but cannot run br-int (e.g. the kernel datapath without its
// module) is an error, not a reason to fall back silently.
func New(ctx context.Context, cfg Config) (Wirer, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	if cfg.Bridge == "" {
		cfg.Bridge = hybrid.IntegrationBridge
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Exec == nil {
		if cfg.Netns != "" {
			cfg.Exec = dataplane.Netns{Name: cfg.Netns}
		} else {
			cfg.Exec = dataplane.Host{}
		}
	}
	switch cfg.Mode {
	case ModeAuto, ModeOVS, ModeLinux:
	default:
		return nil, fmt.Errorf("wiring mode %q: want auto, ovs or linux", cfg.Mode)
	}
	switch cfg.DatapathType {
	case "", "system", "netdev":
	default:
		return nil, fmt.Errorf("OVS datapath type %q: want system or netdev", cfg.DatapathType)
	}

	l, err := newLinks(cfg.Netns)
	if err != nil {
		return nil, err
	}
	w := &wirer{mu: make(chan struct{}, 1), links: l, log: cfg.Logger}
	var ovsErr error
	if cfg.Mode != ModeLinux {
		o := &ovsBridge{name: cfg.Bridge, db: cfg.OVSDB, exec: cfg.Exec, timeout: cfg.Timeout, datapath: cfg.DatapathType, log: cfg.Logger}
		ovsErr = o.ensure(ctx)
		if ovsErr == nil {
			w.br = o
			return w, nil
		}
		if cfg.Mode == ModeOVS || !errors.Is(ovsErr, ErrNoOVS) {
			l.close()
			return nil, fmt.Errorf("integration bridge %s (OVS): %w", cfg.Bridge, ovsErr)
		}
	}
	lb := &linuxBridge{name: cfg.Bridge, links: l}
	if err := lb.ensure(); err != nil {
		l.close()
		if ovsErr != nil {
			return nil, fmt.Errorf("no usable integration bridge %s: OVS: %v; Linux bridge: %w", cfg.Bridge, ovsErr, err)
		}
		return nil, fmt.Errorf("integration bridge %s (Linux bridge): %w", cfg.Bridge, err)
	}
	attrs := []any{"bridge", cfg.Bridge}
	if ovsErr != nil {
		attrs = append(attrs, "ovs_error", ovsErr.Error())
	}
	cfg.Logger.Warn("integration bridge is a Linux bridge: NO VLAN ISOLATION between networks on this host "+
		"(all networks share one L2 segment); install and start Open vSwitch for per-network isolation", attrs...)
	w.br = lb
	return w, nil
}

// bridge is the integration bridge's side of the wiring: OVS or Linux.
type bridge interface {
	kind() string
	addPort(ctx context.Context, qvo string, p Port) error
	delPort(ctx context.Context, qvo string) error
	// ports returns the qvo ports on the bridge by DevID.
	ports(ctx context.Context) (map[string]bridgePort, error)
}

type bridgePort struct {
	portID, networkID, mac string
	tag                    int
}

// wirer is the Wirer: links over netlink plus a bridge.
type wirer struct {
	mu    chan struct{} // a mutex that respects ctx
	links *links
	br    bridge
	log   *slog.Logger
}

func (w *wirer) lock(ctx context.Context) error {
	if w.mu == nil {
		panic("wiring: wirer not built by New")
	}
	select {
	case w.mu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *wirer) unlock() { <-w.mu }

func (w *wirer) Kind() string { return w.br.kind() }

func (w *wirer) Close() error {
	w.links.close()
	return nil
}

func (w *wirer) Plug(ctx context.Context, p Port) error {
	if err := hybrid.CheckDeviceID(p.ID); err != nil {
		return fmt.Errorf("plug: %w", err)
	}
	if _, err := net.ParseMAC(p.MAC); err != nil {
		return fmt.Errorf("plug port %s: MAC %q: %w", p.ID, p.MAC, err)
	}
	if p.NetworkID != "" {
		if err := hybrid.CheckDeviceID(p.NetworkID); err != nil {
			return fmt.Errorf("plug port %s: network: %w", p.ID, err)
		}
	}
	if p.MTU != 0 && (p.MTU < 68 || p.MTU > 65535) {
		return fmt.Errorf("plug port %s: MTU %d out of range", p.ID, p.MTU)
	}
	if w.br.kind() == KindOVS && (p.Tag < MinVLAN || p.Tag > DeadVLAN) {
		return fmt.Errorf("plug port %s: local VLAN tag %d: want %d..%d", p.ID, p.Tag, MinVLAN, DeadVLAN)
	}
	if err := w.lock(ctx); err != nil {
		return err
	}
	defer w.unlock()
	qbr, qvb, qvo := hybrid.BridgeName(p.ID), hybrid.BridgeVethName(p.ID), hybrid.OVSVethName(p.ID)
	br, err := w.links.ensureBridge(qbr, p.MTU, portAlias{id: p.ID, network: p.NetworkID, mac: p.MAC, mtu: p.MTU}.String())
	if err != nil {
		return fmt.Errorf("plug port %s: %w", p.ID, err)
	}
	vb, vo, err := w.links.ensureVeth(qvb, qvo, p.MTU)
	if err != nil {
		return fmt.Errorf("plug port %s: %w", p.ID, err)
	}
	for _, name := range []string{qbr, qvb, qvo} {
		if err := w.links.disableIPv6(name); err != nil {
			return fmt.Errorf("plug port %s: %w", p.ID, err)
		}
	}
	if err := w.links.setMaster(vb, br); err != nil {
		return fmt.Errorf("plug port %s: %w", p.ID, err)
	}
	for _, l := range []netlink.Link{br, vb, vo} {
		if err := w.links.up(l); err != nil {
			return fmt.Errorf("plug port %s: %w", p.ID, err)
		}
	}
	if err := w.br.addPort(ctx, qvo, p); err != nil {
		return fmt.Errorf("plug port %s: %w", p.ID, err)
	}
	return nil
}

func (w *wirer) AttachTap(ctx context.Context, portID string) (bool, error) {
	if err := hybrid.CheckDeviceID(portID); err != nil {
		return false, fmt.Errorf("attach tap: %w", err)
	}
	if err := w.lock(ctx); err != nil {
		return false, err
	}
	defer w.unlock()
	tapName, qbr := hybrid.TapName(portID), hybrid.BridgeName(portID)
	tap, err := w.links.get(tapName)
	if err != nil || tap == nil {
		return false, err
	}
	br, err := w.links.get(qbr)
	if err != nil {
		return false, err
	}
	if br == nil {
		return false, fmt.Errorf("attach %s: port %s is not plugged (%s missing)", tapName, portID, qbr)
	}
	alias := parseAlias(br.Attrs().Alias)
	if alias.mtu > 0 && tap.Attrs().MTU != alias.mtu {
		if err := w.links.h.LinkSetMTU(tap, alias.mtu); err != nil {
			return false, fmt.Errorf("set MTU %d on %s: %w", alias.mtu, tapName, err)
		}
	}
	if err := w.links.disableIPv6(tapName); err != nil {
		return false, err
	}
	if err := w.links.setMaster(tap, br); err != nil {
		return false, err
	}
	if err := w.links.up(tap); err != nil {
		return false, err
	}
	return true, nil
}

func (w *wirer) AdoptTap(ctx context.Context, portID, dev string) error {
	if err := hybrid.CheckDeviceID(portID); err != nil {
		return fmt.Errorf("adopt tap: %w", err)
	}
	if dev == hybrid.TapName(portID) {
		return nil
	}
	if err := w.lock(ctx); err != nil {
		return err
	}
	defer w.unlock()
	return w.links.adoptTap(portID, dev)
}

// AdoptTap does what Wirer.AdoptTap does, in the calling process's network
// namespace or in the one named netns, without a Wirer: renaming a tap
// needs netlink only, so no integration bridge is looked for or created
// (`moat plug`, which a hypervisor hook calls per VM).
func AdoptTap(netns, portID, dev string) error {
	if err := hybrid.CheckDeviceID(portID); err != nil {
		return fmt.Errorf("adopt tap: %w", err)
	}
	if dev == hybrid.TapName(portID) {
		return nil
	}
	l, err := newLinks(netns)
	if err != nil {
		return err
	}
	defer l.close()
	return l.adoptTap(portID, dev)
}

func (w *wirer) Unplug(ctx context.Context, portID string) error {
	if err := hybrid.CheckDeviceID(portID); err != nil {
		return fmt.Errorf("unplug: %w", err)
	}
	if err := w.lock(ctx); err != nil {
		return err
	}
	defer w.unlock()
	tapName, qbr, qvb, qvo := hybrid.TapName(portID), hybrid.BridgeName(portID), hybrid.BridgeVethName(portID), hybrid.OVSVethName(portID)
	br, err := w.links.get(qbr)
	if err != nil {
		return fmt.Errorf("unplug port %s: %w", portID, err)
	}
	if br != nil {
		if tap, err := w.links.get(tapName); err != nil {
			return fmt.Errorf("unplug port %s: %w", portID, err)
		} else if tap != nil && tap.Attrs().MasterIndex == br.Attrs().Index {
			if err := w.links.h.LinkSetNoMaster(tap); err != nil {
				return fmt.Errorf("unplug port %s: detach %s from %s: %w", portID, tapName, qbr, err)
			}
		}
	}
	if err := w.br.delPort(ctx, qvo); err != nil {
		return fmt.Errorf("unplug port %s: %w", portID, err)
	}
	for _, name := range []string{qvb, qvo, qbr} {
		if err := w.links.del(name); err != nil {
			return fmt.Errorf("unplug port %s: %w", portID, err)
		}
	}
	return nil
}

func (w *wirer) Plugged(ctx context.Context) ([]Plugged, error) {
	if err := w.lock(ctx); err != nil {
		return nil, err
	}
	defer w.unlock()
	all, err := w.links.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byName := make(map[string]netlink.Link, len(all))
	for _, l := range all {
		byName[l.Attrs().Name] = l
	}
	found := map[string]*Plugged{}
	get := func(devID string) *Plugged {
		p := found[devID]
		if p == nil {
			p = &Plugged{PortID: devID, DevID: devID}
			found[devID] = p
		}
		return p
	}
	for _, l := range all {
		name := l.Attrs().Name
		devID, ok := hybrid.DevIDFromName(name)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, hybrid.BridgePrefix) && l.Type() == "bridge":
			p := get(devID)
			p.Bridge = true
			if a := parseAlias(l.Attrs().Alias); a.id != "" && hybrid.DevID(a.id) == devID {
				p.PortID, p.NetworkID, p.MAC, p.MTU = a.id, a.network, a.mac, a.mtu
			}
			if tap, ok := byName[hybrid.TapPrefix+devID]; ok && tap.Attrs().MasterIndex == l.Attrs().Index {
				p.TapAttached = true
			}
		case strings.HasPrefix(name, hybrid.BridgeVethPrefix) && l.Type() == "veth":
			if _, ok := byName[hybrid.OVSVethPrefix+devID]; ok {
				get(devID).Veth = true
			}
		}
	}
	ports, err := w.br.ports(ctx)
	if err != nil {
		return nil, err
	}
	for devID, bp := range ports {
		p := get(devID)
		p.InBrInt = true
		p.Tag = bp.tag
		if bp.portID != "" && hybrid.DevID(bp.portID) == devID {
			p.PortID = bp.portID
		}
		if p.NetworkID == "" {
			p.NetworkID = bp.networkID
		}
		if p.MAC == "" {
			p.MAC = bp.mac
		}
	}
	out := make([]Plugged, 0, len(found))
	for _, p := range found {
		out = append(out, *p)
	}
	sortPlugged(out)
	return out, nil
}

// portAlias is what Plug records in qbrX's interface alias (IFLA_IFALIAS),
// so that Plugged knows the full port id, network, MAC and MTU on either
// kind of br-int.
type portAlias struct {
	id, network, mac string
	mtu              int
}

const aliasPrefix = "moat:"

func (a portAlias) String() string {
	return fmt.Sprintf("%sport=%s,network=%s,mac=%s,mtu=%d", aliasPrefix, a.id, a.network, a.mac, a.mtu)
}

func parseAlias(s string) portAlias {
	var a portAlias
	rest, ok := strings.CutPrefix(s, aliasPrefix)
	if !ok {
		return a
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "port":
			a.id = v
		case "network":
			a.network = v
		case "mac":
			a.mac = v
		case "mtu":
			fmt.Sscanf(v, "%d", &a.mtu)
		}
	}
	return a
}

func sortPlugged(ps []Plugged) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].DevID < ps[j].DevID })
}

// lookPath reports whether a tool is installed, for error messages.
func lookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}
