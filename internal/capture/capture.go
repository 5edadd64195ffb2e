package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Hop names, in the order a frame from the VM crosses them.
const (
	HopVM    = "vm"
	HopTap   = "tap"
	HopQbr   = "qbr"
	HopQvb   = "qvb"
	HopQvo   = "qvo"
	HopBrInt = "br-int"
	HopPhys  = "physical"
)

// Hop is one device to watch.
type Hop struct {
	Name   string `json:"hop"`
	Device string `json:"device"`
	Netns  string `json:"netns,omitempty"` // "" is the current namespace
	// Host names the host of the hop on a path between two hosts
	// (PathBetween); "" on one host's path.
	Host string `json:"host,omitempty"`
	// Partial marks a bridge device: it sees only frames addressed to the
	// host or flooded, not frames the bridge forwards between its ports,
	// so it does not decide where traffic stops.
	Partial bool `json:"partial,omitempty"`
}

// Path returns the hops of a port (id or an id prefix of 11 characters):
// the VM's interface when vmNetns names one (a lab VM), then tap, qbr,
// qvb, qvo and br-int in hostNetns, then the physical interface if given.
func Path(portID, hostNetns, vmNetns, vmDev, physical string) []Hop {
	dev := hybrid.PortDevices(portID)
	var hops []Hop
	if vmNetns != "" && vmDev != "" {
		hops = append(hops, Hop{Name: HopVM, Device: vmDev, Netns: vmNetns})
	}
	hops = append(hops,
		Hop{Name: HopTap, Device: dev.Tap, Netns: hostNetns},
		Hop{Name: HopQbr, Device: dev.Bridge, Netns: hostNetns, Partial: true},
		Hop{Name: HopQvb, Device: dev.BridgeVeth, Netns: hostNetns},
		Hop{Name: HopQvo, Device: dev.OVSVeth, Netns: hostNetns},
		Hop{Name: HopBrInt, Device: hybrid.IntegrationBridge, Netns: hostNetns, Partial: true},
	)
	if physical != "" {
		hops = append(hops, Hop{Name: HopPhys, Device: physical, Netns: hostNetns})
	}
	return hops
}

// Side is one end of a path between two ports (PathBetween): the port,
// its host's namespace and name, the VM's namespace and device (a lab VM;
// "" when unknown) and the host's uplink.
type Side struct {
	Host     string // a name for the verdict (e.g. the host's namespace)
	Netns    string
	PortID   string
	VMNetns  string
	VMDev    string
	Physical string
}

// PathBetween returns the hops from a's VM to b's VM across two hosts, as
// the seed's capture points A–G: a's VM, tap, qbr, qvb, qvo, br-int and
// uplink, then b's uplink, br-int, qvo, qvb, qbr, tap and VM. (The patch
// ports between br-int and br-eth1 are not network devices and cannot be
// captured on; the uplink shows the frames with their provider VLAN tag.)
func PathBetween(a, b Side) []Hop {
	hops := Path(a.PortID, a.Netns, a.VMNetns, a.VMDev, a.Physical)
	for i := range hops {
		hops[i].Host = a.Host
	}
	back := Path(b.PortID, b.Netns, b.VMNetns, b.VMDev, b.Physical)
	for i := len(back) - 1; i >= 0; i-- {
		back[i].Host = b.Host
		hops = append(hops, back[i])
	}
	return hops
}

// Sniffer captures on one hop until ctx ends.
type Sniffer interface {
	Sniff(ctx context.Context, hop Hop, filter string) ([]Packet, error)
}

// Tcpdump sniffs with tcpdump, through `ip netns exec` for other namespaces.
type Tcpdump struct{}

func (Tcpdump) Sniff(ctx context.Context, hop Hop, filter string) ([]Packet, error) {
	args := []string{"-i", hop.Device, "-nn", "-U", "-s", "192", "-w", "-"}
	if filter != "" {
		args = append(args, hopFilter(hop, filter))
	}
	name := "tcpdump"
	if hop.Netns != "" {
		args = append([]string{"netns", "exec", hop.Netns, "tcpdump"}, args...)
		name = "ip"
	}
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tcpdump on %s: %w", hop.Device, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// tcpdump ended by itself: the device is missing or the filter bad.
		return nil, fmt.Errorf("tcpdump on %s: %v: %s", hop.Device, err, strings.TrimSpace(stderr.String()))
	case <-ctx.Done():
		// SIGINT makes tcpdump flush and exit cleanly.
		cmd.Process.Signal(interruptSignal)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	return ReadPcap(&stdout)
}

// hopFilter is the BPF filter for a hop. On an uplink, frames carry the
// provider VLAN's tag inline (those OVS sends; received ones have it in
// the packet's metadata), and a filter's offsets then skip it only after
// the "vlan" keyword.
func hopFilter(hop Hop, filter string) string {
	if hop.Name != HopPhys || filter == "" {
		return filter
	}
	return fmt.Sprintf("(%s) or (vlan and (%s))", filter, filter)
}

// HopResult is what one hop saw.
type HopResult struct {
	Hop
	Packets int `json:"packets"`
	// VLANs are the 802.1Q tags the hop's frames carried, sorted (the
	// provider VLAN on an uplink; none on the VM's side).
	VLANs   []int    `json:"vlans,omitempty"`
	Error   string   `json:"error,omitempty"`
	packets []Packet // kept for the analysis
}

// newHopResult counts the packets and their VLAN tags.
func newHopResult(h Hop, ps []Packet) HopResult {
	r := HopResult{Hop: h, Packets: len(ps), packets: ps}
	seen := map[int]bool{}
	for _, p := range ps {
		if p.VLAN > 0 && !seen[p.VLAN] {
			seen[p.VLAN] = true
			r.VLANs = append(r.VLANs, p.VLAN)
		}
	}
	sort.Ints(r.VLANs)
	return r
}

// Watch sniffs every hop at once for the given time.
func Watch(ctx context.Context, s Sniffer, hops []Hop, filter string, d time.Duration) []HopResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out := make([]HopResult, len(hops))
	var wg sync.WaitGroup
	for i, h := range hops {
		wg.Add(1)
		go func(i int, h Hop) {
			defer wg.Done()
			ps, err := s.Sniff(ctx, h, filter)
			out[i] = newHopResult(h, ps)
			if err != nil {
				out[i].Error = err.Error()
			}
		}(i, h)
	}
	wg.Wait()
	return out
}

// Stop is a flow that was seen on one side of a hop and not the other.
type Stop struct {
	Flow      string `json:"flow"`
	Direction string `json:"direction"` // ingress (to the VM) or egress (from it), of Host's port
	Host      string `json:"host,omitempty"`
	Between   string `json:"between"` // e.g. "qvb and tap"
	Seen      int    `json:"packets"`
	Firewall  bool   `json:"firewall"` // the host firewall's place on the path
	Next      string `json:"next,omitempty"`
}

// Report is the table and the verdict.
type Report struct {
	Port    string      `json:"port"`
	Hops    []HopResult `json:"hops"`
	Stops   []Stop      `json:"stops"`
	Verdict string      `json:"verdict"`
}

type flowKey struct {
	src, dst          netip.Addr
	proto, sport, dpt int
	icmpT, icmpC      int
}

// Analyze says, for each flow, how far it got along one port's path. A
// flow seen on qvb but not on the tap was coming in and stopped in the
// port's bridge: that is where the host firewall (FORWARD, physdev) drops;
// a flow seen on the tap but not on qvb was going out and stopped there
// too.
func Analyze(portID, hostNetns string, results []HopResult) Report {
	return analyze(portID, results, []Side{{Netns: hostNetns, PortID: portID}})
}

// AnalyzeBetween is Analyze for a path between two ports (PathBetween):
// the verdict names the host and the hop where a flow stops.
func AnalyzeBetween(a, b Side, results []HopResult) Report {
	return analyze(a.PortID+" -> "+b.PortID, results, []Side{a, b})
}

// analyze walks the hops that see every frame of a port (not the bridge
// devices), in path order. A flow first seen at the path's start travels
// forward and stops after the last hop that saw it; one last seen at the
// path's end travels backward and stops before the first. sides are the
// ends of the path: hops of sides[0].Host (or all, with one side) come
// first, and travelling forward leaves sides[0]'s VM and reaches
// sides[1]'s.
func analyze(port string, results []HopResult, sides []Side) Report {
	rep := Report{Port: port, Hops: results}
	var path []int // indexes into results
	for i, r := range results {
		if !r.Partial && r.Error == "" {
			path = append(path, i)
		}
	}
	seen := map[flowKey]map[int]int{}
	var order []flowKey
	for _, i := range path {
		for _, p := range results[i].packets {
			if p.Proto < 0 {
				continue // ARP and the like: not what security groups filter
			}
			k := flowKey{p.Src, p.Dst, p.Proto, p.Sport, p.Dport, p.ICMPType, p.ICMPCode}
			if seen[k] == nil {
				seen[k] = map[int]int{}
				order = append(order, k)
			}
			seen[k][i]++
		}
	}
	sideOf := func(r HopResult) (int, Side) {
		for n, s := range sides {
			if s.Host == r.Host {
				return n, s
			}
		}
		return 0, sides[0]
	}
	multi := len(sides) > 1
	for _, k := range order {
		at := seen[k]
		first, last := -1, -1
		for pos, i := range path {
			if at[i] > 0 {
				if first < 0 {
					first = pos
				}
				last = pos
			}
		}
		var fromI, toI int
		var forward bool
		switch {
		case first < 0:
			continue
		case first == 0 && last < len(path)-1:
			fromI, toI, forward = path[last], path[last+1], true
		case first > 0 && last == len(path)-1:
			fromI, toI = path[first], path[first-1]
		default:
			continue // crossed every watched hop, or seen only in the middle
		}
		from, to := results[fromI], results[toI]
		n, side := sideOf(from)
		st := &Stop{Flow: describe(k), Seen: at[fromI], Direction: "ingress"}
		if forward == (n == 0) {
			st.Direction = "egress"
		}
		if multi {
			st.Host = from.Host
		}
		st.Between = from.Name + " and " + to.Name
		if from.Host != to.Host {
			st.Between = fmt.Sprintf("%s's %s and %s's %s", from.Host, from.Name, to.Host, to.Name)
		}
		pair := from.Name + "/" + to.Name
		st.Firewall = from.Host == to.Host && (pair == HopQvb+"/"+HopTap || pair == HopTap+"/"+HopQvb)
		if st.Firewall {
			st.Between = "qbr and the tap"
			if st.Direction == "egress" {
				st.Between = "the tap and qbr"
			}
			st.Next = traceCommand(side.PortID, side.Netns, st.Direction, k)
		}
		rep.Stops = append(rep.Stops, *st)
	}
	sort.SliceStable(rep.Stops, func(i, j int) bool { return rep.Stops[i].Seen > rep.Stops[j].Seen })
	switch {
	case len(order) == 0:
		rep.Verdict = "no IP packets seen on the port's path: is traffic being sent, and does the filter match it?"
	case len(rep.Stops) == 0:
		rep.Verdict = "every flow seen crossed all the watched hops"
	default:
		s := rep.Stops[0]
		on := ""
		if s.Host != "" {
			on = " on host " + s.Host
		}
		switch {
		case s.Firewall:
			rep.Verdict = fmt.Sprintf("%s packets (%s) stop between %s%s: the host firewall dropped them (the port's security groups). Find the rule that decided with:\n  %s",
				s.Direction, s.Flow, s.Between, on, s.Next)
		case strings.Contains(s.Between, HopPhys+" and ") && strings.Count(s.Between, HopPhys) == 2:
			rep.Verdict = fmt.Sprintf("packets (%s) stop between %s: they left one host's uplink and never reached the other's — the physical network (its VLAN trunk) does not carry them; the tags they left with are in the table",
				s.Flow, s.Between)
		case s.Between == HopQvo+" and "+HopPhys || s.Between == HopPhys+" and "+HopQvo:
			rep.Verdict = fmt.Sprintf("%s packets (%s) stop between %s%s: br-int and the physical bridge did not pass them — not the security groups; check --bridge-mappings and the provider flows (ovs-ofctl dump-flows br-int / br-eth1)",
				s.Direction, s.Flow, s.Between, on)
		default:
			rep.Verdict = fmt.Sprintf("%s packets (%s) stop between %s%s: not the security groups (that would be between qbr and the tap); look at the wiring there",
				s.Direction, s.Flow, s.Between, on)
		}
	}
	return rep
}

func describe(k flowKey) string {
	s := fmt.Sprintf("%s > %s protocol %d", k.src, k.dst, k.proto)
	switch {
	case k.icmpT >= 0:
		s += fmt.Sprintf(" type %d code %d", k.icmpT, k.icmpC)
	case k.dpt != 0:
		s += fmt.Sprintf(" port %d", k.dpt)
	}
	return s
}

// traceCommand is the `moat trace` that explains the drop of one flow.
func traceCommand(portID, hostNetns, dir string, k flowKey) string {
	var b strings.Builder
	b.WriteString("moat trace")
	if hostNetns != "" {
		b.WriteString(" --netns " + hostNetns)
	}
	fmt.Fprintf(&b, " --port %s --direction %s --protocol %d --src %s --dst %s", portID, dir, k.proto, k.src, k.dst)
	switch {
	case k.icmpT >= 0:
		fmt.Fprintf(&b, " --icmp-type %d --icmp-code %d", k.icmpT, k.icmpC)
	case k.dpt != 0:
		fmt.Fprintf(&b, " --sport %d --dport %d", k.sport, k.dpt)
	}
	return b.String()
}

var linkNetns = regexp.MustCompile(`link-netns (\S+)`)
var peerIndex = regexp.MustCompile(`^\d+: [^@:]+@if(\d+):`)

// VMSide finds the namespace and device at the other end of a veth tap (a
// lab VM), or "" when the tap is not a veth into a named namespace.
func VMSide(ctx context.Context, hostNetns, tap string) (netns, dev string, err error) {
	out, err := ipCmd(ctx, hostNetns, "-o", "link", "show", "dev", tap)
	if err != nil {
		return "", "", err
	}
	m := linkNetns.FindSubmatch(out)
	p := peerIndex.FindSubmatch(out)
	if m == nil || p == nil {
		return "", "", nil
	}
	netns = string(m[1])
	idx, _ := strconv.Atoi(string(p[1]))
	links, err := ipCmd(ctx, netns, "-o", "link", "show")
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.SplitN(line, ": ", 3)
		if len(f) < 2 {
			continue
		}
		if n, _ := strconv.Atoi(f[0]); n == idx {
			name, _, _ := strings.Cut(f[1], "@")
			return netns, name, nil
		}
	}
	return "", "", nil
}

func ipCmd(ctx context.Context, netns string, args ...string) ([]byte, error) {
	if netns != "" {
		args = append([]string{"netns", "exec", netns, "ip"}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ErrNoTcpdump says tcpdump is missing.
var ErrNoTcpdump = errors.New("tcpdump is not installed (apt-get install tcpdump)")

// CheckTools reports a missing tcpdump early.
func CheckTools() error {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return ErrNoTcpdump
	}
	return nil
}

func shortError(e string) string {
	if i := strings.LastIndex(e, ": "); i >= 0 {
		return e[i+2:]
	}
	return e
}

// WriteText prints the hop table and the verdict.
func WriteText(w io.Writer, rep Report) error {
	fmt.Fprintf(w, "port %s\n\n", rep.Port)
	multi := false
	for _, h := range rep.Hops {
		multi = multi || h.Host != ""
	}
	if multi {
		fmt.Fprintf(w, "  %-14s ", "host")
	}
	fmt.Fprintf(w, "  %-8s %-16s %-14s %8s\n", "hop", "device", "netns", "packets")
	for _, h := range rep.Hops {
		ns := h.Netns
		if ns == "" {
			ns = "-"
		}
		count := strconv.Itoa(h.Packets)
		note := ""
		if h.Partial {
			note = "  (a bridge device: sees only frames for the host, or flooded)"
		}
		if len(h.VLANs) > 0 {
			var tags []string
			for _, v := range h.VLANs {
				tags = append(tags, strconv.Itoa(v))
			}
			note += "  VLAN " + strings.Join(tags, ", ")
		}
		if multi {
			fmt.Fprintf(w, "  %-14s ", h.Host)
		}
		switch {
		case h.Error != "" && h.Partial:
			// Not needed for the verdict (an OVS bridge's own port is often down).
			count, note = "-", "  (not capturable: "+shortError(h.Error)+")"
		case h.Error != "":
			count = "error"
		}
		fmt.Fprintf(w, "  %-8s %-16s %-14s %8s%s\n", h.Name, h.Device, ns, count, note)
		if h.Error != "" && !h.Partial {
			fmt.Fprintf(w, "           %s\n", h.Error)
		}
	}
	fmt.Fprintln(w)
	for _, s := range rep.Stops {
		on := ""
		if s.Host != "" && !strings.Contains(s.Between, s.Host) {
			on = " on " + s.Host
		}
		fmt.Fprintf(w, "  stops: %s %s, %d packet(s), between %s%s\n", s.Direction, s.Flow, s.Seen, s.Between, on)
	}
	if len(rep.Stops) > 0 {
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintf(w, "verdict: %s\n", rep.Verdict)
	return err
}
