// Package agent is the host agent's sync loop: it follows the store for
// what concerns its host, compiles the host's rules with the firewall
// compiler, and makes the kernel hold them: port wiring, ipsets, iptables
// and conntrack, in an order that never leaves a port open. The kernel side
// sits behind the small interfaces below, so the loop is tested with fakes.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/metrics"
	"github.com/moat-sg/moat/internal/netlog"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// Feed is the agent's view of the desired state: a snapshot of its host at
// a revision of the change log, and a way to learn that there is a newer
// one. It is narrow on purpose, so that a remote feed for multi-host
// deployments can replace the local store.
type Feed interface {
	Snapshot(ctx context.Context) (*store.HostSnapshot, error)
	LatestRevision(ctx context.Context) (int64, error)
	// Changed returns a channel closed at the next local change, or nil
	// when changes can only be found by polling LatestRevision.
	Changed() <-chan struct{}
	// SetPortStatus reports a port ACTIVE (reason "") or ERROR with the
	// reason the agent cannot enforce it.
	SetPortStatus(ctx context.Context, portID, status, reason string) error
}

// Reporter is a Feed that takes a sync's reports at once, with the
// revision the host's kernel enforces (the watch client: one request per
// sync instead of one per port). The agent uses it when the feed has it.
type Reporter interface {
	Report(ctx context.Context, r hostview.Report) error
}

// Rules applies iptables rulesets (the iptables syncer).
type Rules interface {
	Apply(ctx context.Context, rs *firewall.Ruleset) error
	// Check re-reads the kernel and lists what differs from rs.
	Check(ctx context.Context, rs *firewall.Ruleset) ([]string, error)
	CanaryPresent(ctx context.Context) (bool, error)
	// Invalidate makes the next Apply re-read the kernel.
	Invalidate()
	InstalledZones(ctx context.Context) (map[string]int, error)
}

// Sets applies ipsets (the ipset syncer).
type Sets interface {
	// Apply creates and fills the desired sets and returns the owned sets
	// that are no longer desired, to destroy once no rule uses them.
	Apply(ctx context.Context, sets []firewall.IPSet) ([]string, error)
	Destroy(ctx context.Context, names []string) error
	Check(ctx context.Context, sets []firewall.IPSet) ([]string, error)
	Invalidate()
}

// WirePort is what wiring needs to know about a port.
type WirePort struct {
	ID, MAC, NetworkID string
	Tag, MTU           int
}

// Plugged is a port found wired at start-up (NetworkID "" if unknown).
// MAC and MTU are set only for a port wired completely: a port that
// differs from what it should be in any field is plugged again.
type Plugged struct {
	ID, NetworkID, MAC string
	Tag, MTU           int
}

// Wiring plugs ports the hybrid way (tap, qbr, qvb/qvo, br-int).
type Wiring interface {
	Plug(ctx context.Context, p WirePort) error
	// AttachTap puts the port's tap into its qbr, once its chains exist.
	AttachTap(ctx context.Context, portID string) (bool, error)
	Unplug(ctx context.Context, portID string) error
	Plugged(ctx context.Context) ([]Plugged, error)
}

// Config tunes the loop.
type Config struct {
	Options firewall.Options
	// PollInterval is how often the change log is polled for changes made
	// by other processes.
	PollInterval time.Duration
	// CheckInterval is how often the kernel is re-read to find and repair
	// drift (someone editing or flushing moat's chains or sets).
	CheckInterval time.Duration
	// TapInterval is how often missing taps and the canary are looked for.
	TapInterval time.Duration
	// MaxBackoff bounds the retry delay after a failed apply.
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// OnSynced, if set, is called after each successful sync with the
	// change log revision the kernel now enforces (for benchmarks).
	OnSynced func(revision int64)
	// Previous are the backends the host may be switching from
	// (Backend.Previous): zones are taken from them when the agent's own
	// backend has none, and their rules removed after the first apply.
	Previous []Previous
	// Provider, if set, takes the networks' frames off the host through
	// the physical bridges (--bridge-mappings): it is told the local VLAN
	// and segment of every network with a port here after each sync, and
	// forced to rewrite its flows at every drift check.
	Provider Provider
	// Logging, if set, turns the host's log objects into log rules
	// (docs/logging.md) and keeps its index of what they stand for.
	Logging *Logging
}

// Logging configures security-group logging.
type Logging struct {
	Options firewall.LogOptions
	// Index is set after every sync; the NFLOG reader reads it.
	Index *netlog.Index
}

// Provider keeps the flows translating local VLANs to provider segments
// (wiring.Provider).
type Provider interface {
	// Sync makes the flows match segs (rewriting them all when force) and
	// returns the segments that cannot leave the host.
	Sync(ctx context.Context, segs []wiring.Segment, force bool) (unmapped []wiring.Segment, err error)
}

// DefaultConfig is the production tuning: drift is repaired within about
// CheckInterval plus one apply, well under ten seconds.
func DefaultConfig() Config {
	return Config{
		Options:       firewall.Options{EnableIPSet: true, CommentRules: true},
		PollInterval:  200 * time.Millisecond,
		CheckInterval: 5 * time.Second,
		TapInterval:   time.Second,
		MaxBackoff:    30 * time.Second,
	}
}

// Agent is one host's agent.
type Agent struct {
	cfg       Config
	logCache  firewall.LogCache
	feed      Feed
	rules     Rules
	sets      Sets
	wiring    Wiring
	conntrack conntrack.Deleter
	log       *slog.Logger

	compiler *firewall.Compiler
	zones    map[string]int
	applied  *firewall.Ruleset // what the kernel holds, nil until the first apply
	rev      int64

	// A tap joins its bridge only once the port's own rules are in the
	// kernel. Each successful apply gets a generation; enforced records,
	// per port, the last one whose ruleset held the port's rules, and
	// kernelGen the generation the kernel is known to hold: 0 after a
	// failed apply (a table may be half written) or drift, until the next
	// successful apply.
	gen       uint64
	kernelGen uint64
	enforced  map[string]uint64
	// held are the ports whose rules the kernel holds: on a name clash,
	// they keep their names (firewall.HostState.Installed).
	held map[string]bool

	previous []Previous // backends holding rules to remove after the next apply

	wired    map[string]WirePort   // ports plugged (qbr/qvb/qvo)
	attached map[string]bool       // ports whose tap is in their qbr
	status   map[string]portStatus // status last reported to the store
	// pending are statuses not reported yet to a Reporter feed, and
	// reportedRev the revision it was last told the kernel enforces.
	pending     map[string]portStatus
	reportedRev int64
	vlans       *wiring.VLANs // local VLAN per network
	warnings    []string      // the compiler's, last logged
	// segments are the networks of the last sync for the Provider, and
	// unmapped the ones last warned about (they stay on the host).
	segments []wiring.Segment
	unmapped map[string]bool
}

// bigHost is the port count from which a first sync logs its phases.
const bigHost = 1000

// portStatus is what the agent reports for a port.
type portStatus struct{ status, reason string }

// New builds an agent.
func New(cfg Config, feed Feed, rules Rules, sets Sets, wire Wiring, ct conntrack.Deleter) *Agent {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{cfg: cfg, feed: feed, rules: rules, sets: sets, wiring: wire, conntrack: ct, log: cfg.Logger,
		compiler: firewall.NewCompiler(), zones: map[string]int{}, wired: map[string]WirePort{},
		enforced: map[string]uint64{}, held: map[string]bool{},
		attached: map[string]bool{}, status: map[string]portStatus{}, pending: map[string]portStatus{}, vlans: wiring.NewVLANs()}
}

// Run syncs until ctx ends. Rules stay installed when it returns: a
// restarted agent takes over without an open window.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.recover(ctx); err != nil {
		return err
	}
	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	check := time.NewTicker(a.cfg.CheckInterval)
	defer check.Stop()
	taps := time.NewTicker(a.cfg.TapInterval)
	defer taps.Stop()

	dirty := true
	backoff := time.Duration(0)
	var retry <-chan time.Time
	// The canary is checked at most every TapInterval, and no more often
	// than keeps it under 5% of the time: with iptables-legacy, reading
	// even one chain fetches the whole table, which at thousands of ports
	// takes a large fraction of a second.
	var canaryAt time.Time
	canaryEvery := a.cfg.TapInterval
	for {
		if dirty && retry == nil {
			syncStart := time.Now()
			if err := a.Sync(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				metrics.AgentSyncDuration.WithLabelValues("error").Observe(time.Since(syncStart).Seconds())
				backoff = nextBackoff(backoff, a.cfg.MaxBackoff)
				var pe *plugError
				if errors.As(err, &pe) {
					a.log.Error("ports not wired, retrying", "err", err, "retry_in", backoff)
				} else {
					a.log.Error("apply failed; the previous rules stay in force, retrying", "err", err, "retry_in", backoff)
					a.rules.Invalidate()
					a.sets.Invalidate()
				}
				retry = time.After(backoff)
			} else {
				metrics.AgentSyncDuration.WithLabelValues("ok").Observe(time.Since(syncStart).Seconds())
				dirty, backoff = false, 0
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.feed.Changed():
			dirty = true
		case <-poll.C:
			a.flushReports(ctx) // a report that failed is retried
			if rev, err := a.feed.LatestRevision(ctx); err != nil {
				a.log.Warn("poll change log", "err", err)
			} else if rev != a.rev {
				dirty = true
			}
		case <-check.C:
			if a.drifted(ctx) {
				dirty = true
			}
			a.syncProvider(ctx, nil, true)
		case <-taps.C:
			if a.applied != nil && time.Since(canaryAt) >= canaryEvery {
				start := time.Now()
				ok, err := a.rules.CanaryPresent(ctx)
				canaryAt = time.Now()
				canaryEvery = max(a.cfg.TapInterval, 20*canaryAt.Sub(start))
				if err == nil && !ok {
					metrics.AgentDriftRepairs.Inc()
					a.log.Warn("canary chain gone (tables flushed?): resyncing")
					a.rules.Invalidate()
					a.sets.Invalidate()
					a.kernelGen = 0 // no tap joins until the rules are back
					dirty = true
				}
			}
			a.attachTaps(ctx)
		case <-retry:
			retry = nil
		}
	}
}

func nextBackoff(cur, max time.Duration) time.Duration {
	if cur == 0 {
		return 250 * time.Millisecond
	}
	if cur*2 > max {
		return max
	}
	return cur * 2
}

// recover learns what a previous run left: the conntrack zones in the raw
// table (so ports keep theirs) and the ports wired with their VLAN tags.
// A port wired completely as the store still wants it is not plugged
// again by the first sync.
func (a *Agent) recover(ctx context.Context) error {
	zones, err := a.rules.InstalledZones(ctx)
	if err != nil {
		return fmt.Errorf("read installed conntrack zones: %w", err)
	}
	for _, p := range a.cfg.Previous {
		ok, err := p.Present(ctx)
		if err != nil {
			a.log.Warn("look for rules of a previous backend", "backend", p.Name(), "err", err)
			continue
		}
		if !ok {
			continue
		}
		a.previous = append(a.previous, p)
		if len(zones) > 0 {
			continue
		}
		// Switching backends: the ports keep their zones, so that
		// established flows keep their conntrack entries.
		pz, err := p.InstalledZones(ctx)
		if err != nil {
			return fmt.Errorf("read the conntrack zones of the previous backend %s: %w", p.Name(), err)
		}
		zones = pz
		a.log.Info("switching backends: the previous backend's rules stay until this one's are in", "previous", p.Name(), "zones", len(pz))
	}
	for id, z := range zones {
		a.zones[id] = z
		a.held[id] = true
	}
	plugged, err := a.wiring.Plugged(ctx)
	if err != nil {
		return fmt.Errorf("read wired ports: %w", err)
	}
	for _, p := range plugged {
		a.wired[p.ID] = WirePort{ID: p.ID, MAC: p.MAC, NetworkID: p.NetworkID, Tag: p.Tag, MTU: p.MTU}
		if p.MAC != "" {
			a.held[p.ID] = true // wired completely by a previous run
		}
		if p.NetworkID != "" && p.Tag > 0 {
			// A conflict (two networks on one tag after a crash) only
			// means the port is re-plugged with a fresh tag below.
			if err := a.vlans.Seed(p.ID, p.NetworkID, p.Tag); err != nil {
				a.log.Warn("wired port's VLAN not kept", "port", p.ID, "err", err)
			}
		}
	}
	if len(zones) > 0 || len(plugged) > 0 {
		a.log.Info("taking over from a previous run", "zones", len(zones), "wired_ports", len(plugged))
	}
	return nil
}

// Sync makes the host match the store once.
func (a *Agent) Sync(ctx context.Context) error {
	start := time.Now()
	defer a.flushReports(ctx)
	snap, err := a.feed.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read host state: %w", err)
	}
	// A big host's first sync takes a while: say what it is doing.
	big := a.applied == nil && len(snap.Ports) >= bigHost
	if big {
		a.log.Info("first sync of a big host: compiling", "ports", len(snap.Ports), "groups", len(snap.Groups), "revision", snap.Revision)
	}
	hs := HostState(snap, a.cfg.Options, a.zones)
	hs.Installed = a.held
	rs, err := a.compiler.Compile(hs)
	if big && err == nil {
		a.log.Info("first sync of a big host: compiled, wiring and applying", "ports", len(snap.Ports), "took", time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	if a.cfg.Logging != nil {
		ports, info := LogPorts(snap)
		var index map[string]firewall.LogEntry
		rs, index = a.logCache.WithLogging(rs, ports, a.cfg.Logging.Options)
		if a.cfg.Logging.Index != nil {
			a.cfg.Logging.Index.Set(index, info)
		}
	}
	present := map[string]*neutron.Port{}
	for i := range snap.Ports {
		present[snap.Ports[i].ID] = &snap.Ports[i]
	}
	// Ports the compiler rejected get no rules: they are treated as gone
	// from the host (unwired, their taps out of any bridge) and reported.
	rejected := make(map[string]string, len(rs.Rejected))
	for _, r := range rs.Rejected {
		rejected[r.PortID] = r.Reason
	}
	if !slices.Equal(rs.Warnings, a.warnings) {
		for _, w := range rs.Warnings {
			a.log.Warn("host state", "problem", w)
		}
		a.warnings = rs.Warnings
	}
	// 1. Ports that left the host, or are rejected now, lose their wiring
	//    before their chains, so that no frame crosses them unfiltered.
	// Only the leaving ports are sorted (a stable order of unplugs), not
	// every port of a big host at every sync.
	var leaving []string
	for id := range a.wired {
		if _, bad := rejected[id]; present[id] == nil || bad {
			leaving = append(leaving, id)
		}
	}
	sort.Strings(leaving)
	for _, id := range leaving {
		if err := a.wiring.Unplug(ctx, id); err != nil {
			return fmt.Errorf("unplug port %s: %w", id, err)
		}
		delete(a.wired, id)
		delete(a.attached, id)
		a.vlans.Release(id)
		if present[id] == nil {
			delete(a.status, id)
			delete(a.pending, id)
		}
	}
	for _, p := range snap.Ports {
		if reason, bad := rejected[p.ID]; bad {
			delete(a.enforced, p.ID)
			want := portStatus{neutron.PortStatusError, reason}
			if a.status[p.ID] != want {
				a.log.Error("port rejected: it passes no traffic", "port", p.ID, "reason", reason)
			}
			a.report(ctx, &p, want)
		}
	}
	// 2. New ports get their bridge and OVS port; the tap (the VM) is not
	//    connected until step 5, when the port's chains exist. A port that
	//    cannot be plugged is reported and retried; it holds up no other.
	plugFailed := map[string]string{}
	for _, p := range snap.Ports {
		if _, bad := rejected[p.ID]; bad {
			continue
		}
		tag, err := a.vlans.Assign(p.ID, p.NetworkID)
		if err != nil {
			tag = wiring.DeadVLAN // no tag left: wired, but passes nothing
			a.log.Error("no local VLAN left", "port", p.ID, "network", p.NetworkID, "err", err)
		}
		want := WirePort{ID: p.ID, MAC: p.MACAddress, NetworkID: p.NetworkID, Tag: tag, MTU: 1500}
		if n := snap.Networks[p.NetworkID]; n != nil {
			want.MTU = n.MTU
		}
		if have, ok := a.wired[p.ID]; !ok || have != want {
			if err := a.wiring.Plug(ctx, want); err != nil {
				plugFailed[p.ID] = "wiring: " + err.Error()
				continue
			}
			a.wired[p.ID] = want
		}
	}
	// 2b. The provider flows follow the local VLANs (a network's frames
	//     leave the host with its segmentation id). A failure keeps
	//     them off the wire, not a port's rules: it is logged and retried
	//     at the next drift check.
	a.syncProvider(ctx, snap.Networks, false)
	// 3. Sets before the rules that name them, rules, then the sets no
	//    rule names any more. A failure may leave a table half written:
	//    until an apply succeeds, no tap joins its bridge.
	stale, err := a.sets.Apply(ctx, rs.IPSets)
	if err != nil {
		a.kernelGen = 0
		metrics.AgentApplyErrors.Inc()
		return fmt.Errorf("apply ipsets: %w", err)
	}
	if err := a.rules.Apply(ctx, rs); err != nil {
		a.kernelGen = 0
		metrics.AgentApplyErrors.Inc()
		return fmt.Errorf("apply rules: %w", err)
	}
	observeRuleset(rs)
	a.gen++
	a.kernelGen = a.gen
	a.held = make(map[string]bool, len(snap.Ports))
	for _, p := range snap.Ports {
		if _, bad := rejected[p.ID]; !bad {
			a.enforced[p.ID] = a.gen
			a.held[p.ID] = true
		}
	}
	for id := range a.enforced {
		if present[id] == nil {
			delete(a.enforced, id)
		}
	}
	// The host's rules are in this backend now: a previous backend's go.
	var keep []Previous
	for _, p := range a.previous {
		if err := p.Remove(ctx); err != nil {
			a.log.Warn("remove the rules of the previous backend (retried after the next apply)", "backend", p.Name(), "err", err)
			keep = append(keep, p)
			continue
		}
		a.log.Info("removed the rules of the previous backend", "backend", p.Name())
	}
	a.previous = keep
	previous := a.applied
	a.applied = rs
	a.zones = rs.ZoneAssignments
	if len(stale) > 0 {
		if err := a.sets.Destroy(ctx, stale); err != nil {
			a.log.Warn("destroy unused ipsets", "sets", stale, "err", err)
		}
	}
	// 4. Flows that a removed rule or member allowed stop now.
	if filters := flowsToForget(previous, rs, func() map[string][]*net.IPNet { return portAddrs(snap) }); len(filters) > 0 {
		n, err := a.conntrack.Delete(filters)
		if err != nil {
			a.log.Warn("delete conntrack entries", "err", err)
		} else {
			metrics.AgentConntrackDeleted.Add(float64(n))
			a.log.Debug("deleted conntrack entries", "entries", n, "filters", len(filters))
		}
	}
	// 5. Ports are filtered: connect their taps and report them ACTIVE.
	a.attachTaps(ctx)
	for _, p := range snap.Ports {
		if _, bad := rejected[p.ID]; bad {
			continue
		}
		if reason, failed := plugFailed[p.ID]; failed {
			want := portStatus{neutron.PortStatusError, reason}
			if a.status[p.ID] != want {
				a.log.Error("port not wired", "port", p.ID, "reason", reason)
			}
			a.report(ctx, &p, want)
			continue
		}
		a.report(ctx, &p, portStatus{status: neutron.PortStatusActive})
	}
	metrics.AgentPorts.WithLabelValues("enforced").Set(float64(max(0, len(snap.Ports)-len(rejected)-len(plugFailed))))
	metrics.AgentPorts.WithLabelValues("rejected").Set(float64(len(rejected)))
	metrics.AgentPorts.WithLabelValues("unwired").Set(float64(len(plugFailed)))
	if len(plugFailed) > 0 {
		// Everything else is in place; the failed plugs are retried.
		return &plugError{fmt.Sprintf("plug %d port(s): %s", len(plugFailed), strings.Join(sortedValues(plugFailed), "; "))}
	}
	a.rev = snap.Revision
	metrics.AgentEnforcedRevision.Set(float64(snap.Revision))
	if a.cfg.OnSynced != nil {
		a.cfg.OnSynced(snap.Revision)
	}
	// Debug normally; Info for the first sync and slow ones, which an
	// operator wants to see.
	level := slog.LevelDebug
	if a.gen == 1 || time.Since(start) > time.Second {
		level = slog.LevelInfo
	}
	a.log.Log(ctx, level, "synced", "revision", snap.Revision, "ports", len(snap.Ports), "took", time.Since(start).Round(time.Millisecond),
		"compiled_ports", a.compiler.Stats().Ports, "rejected_ports", len(rs.Rejected))
	return nil
}

// plugError is a sync that did everything but plug some ports: the kernel
// holds what the agent knows, so a retry need not re-read it.
type plugError struct{ msg string }

func (e *plugError) Error() string { return e.msg }

// report records a port's status in the store unless the store or the
// agent's last report already says so.
func (a *Agent) report(ctx context.Context, p *neutron.Port, want portStatus) {
	if (portStatus{p.Status, p.StatusReason}) == want || a.status[p.ID] == want {
		a.status[p.ID] = want
		delete(a.pending, p.ID)
		return
	}
	if _, batch := a.feed.(Reporter); batch {
		a.pending[p.ID] = want // sent at the end of the sync
		return
	}
	if err := a.feed.SetPortStatus(ctx, p.ID, want.status, want.reason); err != nil {
		a.log.Warn("report port status", "port", p.ID, "err", err)
		return
	}
	a.status[p.ID] = want
}

// flushReports sends a Reporter feed the statuses the sync collected and
// the revision the kernel enforces, when either moved.
func (a *Agent) flushReports(ctx context.Context) {
	r, ok := a.feed.(Reporter)
	if !ok || (len(a.pending) == 0 && a.rev == a.reportedRev) {
		return
	}
	rep := hostview.Report{Revision: a.rev}
	for _, id := range sortedKeys(a.pending) {
		st := a.pending[id]
		rep.Ports = append(rep.Ports, hostview.PortReport{ID: id, Status: st.status, Reason: st.reason})
	}
	if err := r.Report(ctx, rep); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("report port statuses", "ports", len(rep.Ports), "revision", rep.Revision, "err", err)
		}
		return
	}
	for id, st := range a.pending {
		a.status[id] = st
	}
	clear(a.pending)
	a.reportedRev = rep.Revision
}

// attachTaps connects the taps of wired ports whose own rules the kernel
// holds (the last successful apply had them, and nothing failed or
// drifted since), including taps a hypervisor created since the last look.
func (a *Agent) attachTaps(ctx context.Context) {
	if a.kernelGen == 0 {
		return
	}
	// Most syncs of a big host find every tap attached: sort only the
	// ports still waiting.
	var waiting []string
	for id := range a.wired {
		if !a.attached[id] && a.enforced[id] == a.kernelGen {
			waiting = append(waiting, id)
		}
	}
	sort.Strings(waiting)
	for _, id := range waiting {
		ok, err := a.wiring.AttachTap(ctx, id)
		if err != nil {
			a.log.Warn("attach tap", "port", id, "err", err)
			continue
		}
		if ok {
			a.attached[id] = true
			a.log.Info("port connected", "port", id)
		}
	}
}

// drifted re-reads the kernel; any difference from what was applied is
// repaired by the next sync.
func (a *Agent) drifted(ctx context.Context) bool {
	if a.applied == nil {
		return false
	}
	var diffs []string
	d, err := a.rules.Check(ctx, a.applied)
	if err != nil {
		a.log.Warn("check rules", "err", err)
		return false
	}
	diffs = append(diffs, d...)
	d, err = a.sets.Check(ctx, a.applied.IPSets)
	if err != nil {
		a.log.Warn("check ipsets", "err", err)
		return false
	}
	diffs = append(diffs, d...)
	if len(diffs) == 0 {
		return false
	}
	metrics.AgentDriftRepairs.Inc()
	a.log.Warn("kernel state drifted from moat's rules: repairing", "differences", len(diffs), "first", diffs[0])
	a.rules.Invalidate()
	a.sets.Invalidate()
	a.kernelGen = 0 // no tap joins until the rules are back
	return true
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// StoreFeed is the Feed of an agent that reads the store directly (the
// embedded default and hosts sharing a PostgreSQL database).
type StoreFeed struct {
	Store *store.Store
	Host  string
}

func (f StoreFeed) Snapshot(ctx context.Context) (*store.HostSnapshot, error) {
	var snap *store.HostSnapshot
	err := f.Store.Read(ctx, func(tx *store.Tx) error {
		var err error
		snap, err = tx.HostSnapshot(ctx, f.Host)
		return err
	})
	return snap, err
}

func (f StoreFeed) LatestRevision(ctx context.Context) (int64, error) {
	var rev int64
	err := f.Store.Read(ctx, func(tx *store.Tx) error {
		var err error
		rev, err = tx.LatestRevision(ctx)
		return err
	})
	return rev, err
}

func (f StoreFeed) Changed() <-chan struct{} { return f.Store.Changed() }

var errPortGone = errors.New("port is gone")

func (f StoreFeed) SetPortStatus(ctx context.Context, portID, status, reason string) error {
	err := f.Store.Write(ctx, func(tx *store.Tx) error {
		p, err := tx.PortForStatus(ctx, portID) // not GetPort: a port that does not read in full is reported too
		if err != nil {
			return err
		}
		if p == nil || p.HostID != f.Host {
			return errPortGone
		}
		return tx.ReportPortStatus(ctx, p, status, reason)
	})
	if errors.Is(err, errPortGone) {
		return nil
	}
	return err
}

// observeRuleset sets the ruleset gauges.
func observeRuleset(rs *firewall.Ruleset) {
	chains, rules := 0, 0
	for _, t := range []firewall.Table{rs.IPv4.Filter, rs.IPv4.Raw, rs.IPv6.Filter, rs.IPv6.Raw} {
		for _, cs := range [][]firewall.Chain{t.Builtins, t.Chains} {
			for _, c := range cs {
				rules += len(c.Rules)
			}
		}
		chains += len(t.Chains)
	}
	metrics.AgentChains.Set(float64(chains))
	metrics.AgentRules.Set(float64(rules))
	metrics.AgentSets.Set(float64(len(rs.IPSets)))
}

// syncProvider hands the local VLANs and segments of the networks with
// ports here to the Provider. networks nil reuses the last sync's (a
// forced rewrite at a drift check).
func (a *Agent) syncProvider(ctx context.Context, networks map[string]*neutron.Network, force bool) {
	if a.cfg.Provider == nil {
		return
	}
	if networks != nil {
		tags := a.vlans.Networks()
		segs := make([]wiring.Segment, 0, len(tags))
		for _, id := range sortedKeys(tags) {
			seg := wiring.Segment{NetworkID: id, LocalVLAN: tags[id]}
			if n := networks[id]; n != nil {
				seg.NetworkType = n.NetworkType
				if n.PhysicalNetwork != nil {
					seg.Physnet = *n.PhysicalNetwork
				}
				if n.SegmentationID != nil {
					seg.SegmentationID = *n.SegmentationID
				}
			}
			segs = append(segs, seg)
		}
		a.segments = segs
	}
	unmapped, err := a.cfg.Provider.Sync(ctx, a.segments, force)
	if err != nil {
		a.log.Error("provider bridge flows not written: the host's networks do not reach the wire (retried at the next check)", "err", err)
		return
	}
	now := map[string]bool{}
	for _, s := range unmapped {
		now[s.NetworkID] = true
		if !a.unmapped[s.NetworkID] {
			a.log.Warn("network stays on this host: no bridge mapping for its physical network", "network", s.NetworkID, "network_type", s.NetworkType, "physnet", s.Physnet, "segmentation_id", s.SegmentationID)
		}
	}
	a.unmapped = now
}
