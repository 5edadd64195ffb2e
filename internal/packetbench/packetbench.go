// Package packetbench measures what the firewall costs each packet: TCP
// throughput (iperf3) and ping RTT between two lab VMs (tap → qbr → qvb/qvo
// → OVS userspace br-int → qvo/qvb → qbr → tap) while a host enforces its
// two ports plus N other ports, on each backend.
//
// The lab's own agent wires and enforces the two VMs; it is then stopped
// and the host's whole ruleset (the two VMs' ports and N synthetic ports in
// the same group, on the same network) is applied once by an agent built
// exactly as `moat agent` builds it, over a fixed snapshot and a wiring that
// plugs nothing (the synthetic ports need rules, not devices). The
// synthetic ports sort before the VMs' ports, so in Neutron's linear
// physdev dispatch the measured packets walk every other port's jumps
// first: the worst case, as on a full host.
package packetbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/lab"
	"github.com/moat-sg/moat/internal/netlog"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/pidfile"
	"github.com/moat-sg/moat/internal/store"
)

// None is the backend without any rule: the lab's wiring, the firewall's
// tables flushed. It is the ceiling the others are compared with.
// ConntrackOnly is a diagnostic floor for any stateful firewall: no rule
// but one that makes every forwarded packet go through connection
// tracking (what each backend pays before its first rule).
const (
	None          = "none"
	ConntrackOnly = "conntrack-only"
)

// conntrackOnly is ConntrackOnly's whole ruleset.
const conntrackOnly = `table ip moatbench {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ct state established,related accept
	}
}
`

// iperfPort is the TCP port iperf3 listens on in VM 2.
const iperfPort = 5201

// Options configure a run.
type Options struct {
	// Ports are the numbers of other ports enforced on the host.
	Ports []int
	// Backends: None and agent.Backend names.
	Backends []string
	// Repeat is how many ping and iperf3 runs are made per backend and
	// size; the medians are reported.
	Repeat int
	// Seconds is the length of one iperf3 run; default 3.
	Seconds int
	// Moat is the binary the lab runs; default the running one.
	Moat string
	// Name is the lab's name; default "mpkt".
	Name string
	// Logged puts a network log object (event ALL) on every port of the
	// host and runs the agent's NFLOG reader in the host namespace: the
	// cost of security-group logging (docs/logging.md).
	Logged bool
	Log    func(format string, args ...any)
}

// Result is one backend at one size.
type Result struct {
	Backend string    `json:"backend"`
	Ports   int       `json:"ports"`
	MbitS   float64   `json:"mbit_s"`
	RTTms   float64   `json:"rtt_ms"`
	Mbits   []float64 `json:"mbit_s_runs"`
	RTTs    []float64 `json:"rtt_ms_runs"`
	// ApplyMs is how long the one apply of the host's rules took (0 for
	// None and ConntrackOnly).
	ApplyMs float64 `json:"apply_ms"`
	// Logged: every port had a log object (Options.Logged); LogEvents is
	// how many packets the reader got during the measurement.
	Logged    bool `json:"logged,omitempty"`
	LogEvents int  `json:"log_events,omitempty"`
}

// ValidBackend accepts None and the agent's backends.
func ValidBackend(b string) error {
	if b == None || b == ConntrackOnly {
		return nil
	}
	if _, err := agent.ParseBackend(b); err != nil {
		return fmt.Errorf("backend %q: want %s, %s or one of %v", b, None, ConntrackOnly, agent.Backends())
	}
	return nil
}

// Tools are the programs a run needs besides the lab's.
var Tools = []string{"iperf3", "ping", "nft"}

// Run measures every backend at every size, in that order (one lab each).
func Run(ctx context.Context, opt Options) ([]Result, error) {
	if opt.Repeat < 1 {
		opt.Repeat = 1
	}
	if opt.Seconds < 1 {
		opt.Seconds = 3
	}
	if opt.Name == "" {
		opt.Name = "mpkt"
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	for _, b := range opt.Backends {
		if err := ValidBackend(b); err != nil {
			return nil, err
		}
	}
	var out []Result
	for _, b := range opt.Backends {
		for _, n := range opt.Ports {
			if n < 0 {
				return nil, fmt.Errorf("--ports %d: want ≥ 0", n)
			}
			r, err := runOne(ctx, opt, b, n)
			if err != nil {
				return out, fmt.Errorf("%s, %d ports: %w", b, n, err)
			}
			opt.Log("packets: %s, %d ports: %.0f Mbit/s, RTT %.3f ms (apply %.0f ms)", b, n, r.MbitS, r.RTTms, r.ApplyMs)
			out = append(out, *r)
		}
	}
	return out, nil
}

func runOne(ctx context.Context, opt Options, backend string, others int) (res *Result, err error) {
	labBackend := backend
	if backend == None || backend == ConntrackOnly {
		labBackend = string(agent.IPTablesNFT) // wires the VMs; its rules are flushed below
	}
	opt.Log("packets: %s, %d ports: building the lab", backend, others)
	cfg := lab.Config{Name: opt.Name, VMs: 2, Backend: labBackend, Moat: opt.Moat, Timeout: 2 * time.Minute}
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := lab.Down(context.Background(), opt.Name, l.StateDir); derr != nil && err == nil {
			err = fmt.Errorf("lab down: %w", derr)
		}
	}()
	host := dataplane.Netns{Name: l.HostNetns}
	vm1 := dataplane.Netns{Name: l.VMs[0].Netns}
	vm2 := dataplane.Netns{Name: l.VMs[1].Netns}
	dst := l.VMs[1].IP

	// The lab's group allows egress only: until a rule lets them in, VM 2
	// must not answer (the backend enforces, or the numbers mean nothing).
	if ping(ctx, vm1, dst, 1) == nil {
		return nil, fmt.Errorf("VM 2 answers a ping before any rule allows it: the %s backend does not filter", labBackend)
	}
	api := lab.NewClient(l.HostNetns, l.API)
	defer api.Close()
	for _, rule := range []map[string]any{
		{"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"},
		{"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": iperfPort, "port_range_max": iperfPort},
	} {
		rule["security_group_id"] = l.SecurityGroupID
		if err := api.Do(ctx, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule}, nil); err != nil {
			return nil, fmt.Errorf("allow the benchmark's traffic: %w", err)
		}
	}
	if err := waitPing(ctx, vm1, dst, 30*time.Second); err != nil {
		return nil, fmt.Errorf("after the rules allowing it: %w", err)
	}

	// The lab's agent stops here; what it wired stays, its rules are
	// replaced below.
	if err := pidfile.Stop(lab.PidFile(l.StateDir), l.StateDir, 10*time.Second); err != nil {
		return nil, fmt.Errorf("stop the lab's moat: %w", err)
	}
	res = &Result{Backend: backend, Ports: others, Logged: opt.Logged && backend != None && backend != ConntrackOnly}
	switch backend {
	case None, ConntrackOnly:
		if _, err := host.Run(ctx, nil, "nft", "flush", "ruleset"); err != nil {
			return nil, fmt.Errorf("flush the host's rules: %w", err)
		}
		if backend == ConntrackOnly {
			if _, err := host.Run(ctx, []byte(conntrackOnly), "nft", "-f", "-"); err != nil {
				return nil, fmt.Errorf("load the conntrack-only table: %w", err)
			}
		}
	default:
		snap, err := hostSnapshot(ctx, l)
		if err != nil {
			return nil, err
		}
		if err := addSynthetic(snap, others); err != nil {
			return nil, err
		}
		var logging *agent.Logging
		if res.Logged {
			all := store.HostLog{ID: "10000000-0000-4000-8000-000000000001", Event: neutron.LogEventAll}
			for _, p := range snap.Ports {
				all.Ports = append(all.Ports, p.ID)
			}
			snap.Logs = []store.HostLog{all}
			logging = &agent.Logging{Options: firewall.LogOptions{Group: logGroup, Rate: 100, Burst: 25}, Index: &netlog.Index{}}
			stop, err := readLogs(ctx, l.HostNetns, logging.Index, &res.LogEvents)
			if err != nil {
				return nil, err
			}
			defer stop()
		}
		start := time.Now()
		if err := apply(ctx, agent.Backend(backend), host, snap, logging); err != nil {
			return nil, fmt.Errorf("apply %d ports: %w", len(snap.Ports), err)
		}
		res.ApplyMs = float64(time.Since(start).Microseconds()) / 1000
	}
	if err := waitPing(ctx, vm1, dst, 30*time.Second); err != nil {
		return nil, fmt.Errorf("with %d other ports: %w", others, err)
	}

	// Measure: iperf3 server in VM 2, warm-up, then unloaded RTT (20 pings
	// 0.1 s apart) and throughput, Repeat times each.
	pidPath := filepath.Join(l.StateDir, "iperf3.pid")
	if _, err := vm2.Run(ctx, nil, "iperf3", "-s", "-D", "-B", dst, "-p", strconv.Itoa(iperfPort), "--pidfile", pidPath); err != nil {
		return nil, fmt.Errorf("start iperf3 in %s: %w", vm2.Name, err)
	}
	defer func() { _ = pidfile.Stop(pidPath, "iperf3", time.Second) }()
	if err := waitIPerf(ctx, vm1, dst); err != nil {
		return nil, err
	}
	_, _ = vm1.Run(ctx, nil, "ping", "-c", "50", "-i", "0.01", "-q", dst)
	for i := 0; i < opt.Repeat; i++ {
		rtt, err := rttMs(ctx, vm1, dst)
		if err != nil {
			return nil, err
		}
		res.RTTs = append(res.RTTs, rtt)
	}
	for i := 0; i < opt.Repeat; i++ {
		mbit, err := iperf(ctx, vm1, dst, opt.Seconds)
		if err != nil {
			return nil, err
		}
		res.Mbits = append(res.Mbits, mbit)
	}
	res.RTTms, res.MbitS = median(res.RTTs), median(res.Mbits)
	return res, nil
}

// hostSnapshot reads the lab host's snapshot from its (stopped) moat's
// database, read-only.
func hostSnapshot(ctx context.Context, l *lab.Lab) (*store.HostSnapshot, error) {
	st, err := store.OpenMode(ctx, lab.DBURL(l.StateDir), store.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("open the lab's database: %w", err)
	}
	defer st.Close()
	snap, err := agent.StoreFeed{Store: st, Host: l.HostNetns}.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read host %s: %w", l.HostNetns, err)
	}
	if len(snap.Ports) != len(l.VMs) {
		return nil, fmt.Errorf("host %s has %d ports, want the lab's %d", l.HostNetns, len(snap.Ports), len(l.VMs))
	}
	return snap, nil
}

// addSynthetic adds n ports like the first one (its network and groups)
// with their own ids, MACs and addresses (10.128.0.0/9: outside the lab's
// subnet). Their ids start with four zeros (device names differ in the first 11 characters), so they sort before the VMs' ports.
func addSynthetic(snap *store.HostSnapshot, n int) error {
	if n > 1<<20 {
		return fmt.Errorf("%d other ports: at most %d", n, 1<<20)
	}
	model := snap.Ports[0]
	for i := 0; i < n; i++ {
		p := model
		p.ID = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		p.Name = fmt.Sprintf("synthetic-%d", i)
		p.MACAddress = fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", byte(i>>16)|0x80, byte(i>>8), byte(i))
		p.FixedIPs = []neutron.FixedIP{{SubnetID: model.FixedIPs[0].SubnetID,
			IPAddress: netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)})}}
		p.AllowedAddressPairs = nil
		snap.Ports = append(snap.Ports, p)
	}
	sort.Slice(snap.Ports, func(i, j int) bool { return snap.Ports[i].ID < snap.Ports[j].ID })
	return nil
}

// apply enforces snap on the host once, with the agent `moat agent` runs
// (same compiler options, same syncers), over a wiring that plugs nothing:
// the VMs' devices are the lab's, the synthetic ports have none.
func apply(ctx context.Context, b agent.Backend, host dataplane.Netns, snap *store.HostSnapshot, logging *agent.Logging) error {
	rules, sets, err := b.Kernel(host)
	if err != nil {
		return err
	}
	cfg := agent.DefaultConfig()
	cfg.Options = firewall.Options{EnableIPSet: true, CommentRules: true}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Logging = logging
	feed := &fixedFeed{snap: snap}
	a := agent.New(cfg, feed, rules, sets, noWiring{}, &conntrack.Recorder{})
	if err := a.Sync(ctx); err != nil {
		return err
	}
	if len(feed.errors) > 0 {
		return fmt.Errorf("%d port(s) not enforced: %s", len(feed.errors), strings.Join(feed.errors, "; "))
	}
	return nil
}

// fixedFeed serves one snapshot and keeps the ports reported in error
// (every port of the snapshot is ACTIVE already: the agent reports only
// a change).
type fixedFeed struct {
	snap   *store.HostSnapshot
	errors []string
}

func (f *fixedFeed) Snapshot(context.Context) (*store.HostSnapshot, error) { return f.snap, nil }
func (f *fixedFeed) LatestRevision(context.Context) (int64, error)         { return f.snap.Revision, nil }
func (f *fixedFeed) Changed() <-chan struct{}                              { return nil }
func (f *fixedFeed) SetPortStatus(_ context.Context, id, status, reason string) error {
	if status != neutron.PortStatusActive {
		f.errors = append(f.errors, fmt.Sprintf("%s %s: %s", id, status, reason))
	}
	return nil
}
func (f *fixedFeed) Report(ctx context.Context, r hostview.Report) error {
	for _, p := range r.Ports {
		_ = f.SetPortStatus(ctx, p.ID, p.Status, p.Reason)
	}
	return nil
}

// noWiring plugs nothing and says every tap is attached.
type noWiring struct{}

func (noWiring) Plug(context.Context, agent.WirePort) error       { return nil }
func (noWiring) AttachTap(context.Context, string) (bool, error)  { return true, nil }
func (noWiring) Unplug(context.Context, string) error             { return nil }
func (noWiring) Plugged(context.Context) ([]agent.Plugged, error) { return nil, nil }

func ping(ctx context.Context, vm dataplane.Netns, dst string, count int) error {
	_, err := vm.Run(ctx, nil, "ping", "-c", strconv.Itoa(count), "-W", "1", "-q", dst)
	return err
}

func waitPing(ctx context.Context, vm dataplane.Netns, dst string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ping(ctx, vm, dst, 1)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s cannot ping %s after %s: %w", vm.Name, dst, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitIPerf waits until iperf3's server accepts (it daemonises before it
// listens).
func waitIPerf(ctx context.Context, vm dataplane.Netns, dst string) error {
	var err error
	for i := 0; i < 50; i++ {
		if _, err = iperf(ctx, vm, dst, 1); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("iperf3 server at %s:%d: %w", dst, iperfPort, err)
}

// rttMs is the average RTT of 20 pings 0.1 s apart, in ms.
func rttMs(ctx context.Context, vm dataplane.Netns, dst string) (float64, error) {
	out, err := vm.Run(ctx, nil, "ping", "-c", "20", "-i", "0.1", "-q", dst)
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", dst, err)
	}
	return parsePingAvg(string(out))
}

// parsePingAvg reads the average of iputils ping's summary line
// "rtt min/avg/max/mdev = 0.041/0.052/0.081/0.010 ms".
func parsePingAvg(out string) (float64, error) {
	for _, line := range strings.Split(out, "\n") {
		_, stats, ok := strings.Cut(line, "min/avg/max")
		if !ok {
			continue
		}
		_, nums, ok := strings.Cut(stats, "= ")
		if !ok {
			break
		}
		f := strings.Split(strings.Fields(nums)[0], "/")
		if len(f) < 2 {
			break
		}
		return strconv.ParseFloat(f[1], 64)
	}
	return 0, fmt.Errorf("no RTT summary in ping's output %q", out)
}

func iperf(ctx context.Context, vm dataplane.Netns, dst string, seconds int) (float64, error) {
	out, err := vm.Run(ctx, nil, "iperf3", "-c", dst, "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(seconds), "-J")
	if err != nil {
		return 0, fmt.Errorf("iperf3 to %s: %w", dst, err)
	}
	return parseIPerf(out)
}

// parseIPerf reads the received throughput of iperf3 -J, in Mbit/s.
func parseIPerf(out []byte) (float64, error) {
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("iperf3's JSON: %w", err)
	}
	if r.Error != "" {
		return 0, errors.New("iperf3: " + r.Error)
	}
	return r.End.SumReceived.BitsPerSecond / 1e6, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// logGroup is the netlink log group of a logged run.
const logGroup = 27

// readLogs runs the NFLOG reader in the host namespace, counting events
// into n (read once the reader is stopped).
func readLogs(ctx context.Context, hostNetns string, ix *netlog.Index, n *int) (stop func(), err error) {
	f, err := os.Open("/run/netns/" + hostNetns)
	if err != nil {
		return nil, fmt.Errorf("open the host namespace: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	count := 0
	done := make(chan error, 1)
	go func() {
		done <- netlog.Read(ctx, logGroup, int(f.Fd()), "bench", ix, func(netlog.Event) { mu.Lock(); count++; mu.Unlock() },
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	return func() {
		cancel()
		<-done
		f.Close()
		mu.Lock()
		*n = count
		mu.Unlock()
	}, nil
}
