package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/ovsd"
	"github.com/moat-sg/moat/internal/testenv"
)

func TestValidName(t *testing.T) {
	for _, n := range []string{"lab", "a", "sg-1a2b3c", "x_y", "abcdefghij0123456789"} {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "-lab", "Lab", "a/b", "a b", "abcdefghij0123456789x", "..", "lab.1"} {
		if err := ValidName(n); err == nil {
			t.Errorf("ValidName(%q) = nil", n)
		}
	}
}

func TestDaemonArgs(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "x", Backend: "iptables-legacy"},
			"allinone --listen 127.0.0.1:9696 --db sqlite:///run/moat-lab/x/moat.db --host x-host --backend iptables-legacy --bridge ovs --ovsdb unix:/run/moat-lab/x/db.sock --log-file /run/moat-lab/x/log-events.jsonl"},
		{Config{Name: "y", Backend: "iptables-nft"},
			"allinone --listen 127.0.0.1:9696 --db sqlite:///run/moat-lab/y/moat.db --host y-host --backend iptables-nft --bridge ovs --ovsdb unix:/run/moat-lab/y/db.sock --log-file /run/moat-lab/y/log-events.jsonl"},
	}
	for _, c := range cases {
		if got := strings.Join(DaemonArgs(c.cfg, StateDir(c.cfg.Name)), " "); got != c.want {
			t.Errorf("DaemonArgs(%+v) =\n %s\nwant\n %s", c.cfg, got, c.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cases := []struct {
		cfg Config
		err string
	}{
		{Config{Name: "ok", VMs: 2}, ""},
		{Config{Name: "ok", VMs: 0}, "--vms 0"},
		{Config{Name: "ok", VMs: MaxVMs + 1}, "--vms"},
		{Config{Name: "ok", VMs: 1, Backend: "nftables"}, ""},
		{Config{Name: "ok", VMs: 1, Backend: "pf"}, "--backend"},
		{Config{Name: "Bad", VMs: 1}, "lab name"},
	}
	for _, c := range cases {
		cfg := c.cfg
		err := cfg.defaults()
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("defaults(%+v) = %v, want %q", c.cfg, err, c.err)
			continue
		}
		if err == nil && (cfg.Backend != string(DefaultBackend) && c.cfg.Backend == "" || cfg.StateDir != "/run/moat-lab/ok" || cfg.Moat == "" || cfg.Timeout == 0) {
			t.Errorf("defaults(%+v) = %+v", c.cfg, cfg)
		}
	}
}

// needLab skips (fails with MOAT_REQUIRE_KERNEL=1) unless the lab can run
// here.
func needLab(t *testing.T) {
	t.Helper()
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "ping", "ethtool")
	testenv.RequireOVS(t)
}

func labName() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "mt" + hex.EncodeToString(b)
}

func TestMain(m *testing.M) {
	code := m.Run()
	moatbin.Remove()
	os.Exit(code)
}

func moat(t *testing.T, bin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func inNS(t *testing.T, ns string, name string, args ...string) (string, error) {
	t.Helper()
	out, err := dataplane.Netns{Name: ns}.Run(context.Background(), nil, name, args...)
	return string(out), err
}

func mustNS(t *testing.T, ns string, name string, args ...string) string {
	t.Helper()
	return netnstest.Run(t, dataplane.Netns{Name: ns}, "", name, args...)
}

// TestLab runs `moat lab up NAME --vms 2 --json` and `moat lab down NAME`
// with the real binary and checks what they build and remove, and the
// agent's part: ports ACTIVE, taps wired, the group's whitelist enforced
// with pings.
func TestLab(t *testing.T) {
	needLab(t)
	bin := moatbin.Build(t)
	name := labName()
	host := HostNetns(name)
	state := StateDir(name)
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if err := Down(context.Background(), name, ""); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	start := time.Now()
	stdout, stderr, err := moat(t, bin, "lab", "up", name, "--vms", "2", "--json", "--timeout", "90s")
	if err != nil {
		t.Fatalf("moat lab up: %v\nstderr:\n%s", err, stderr)
	}
	t.Logf("lab up took %s; progress:\n%s", time.Since(start).Round(time.Millisecond), stderr)
	var l Lab
	if err := json.Unmarshal([]byte(stdout), &l); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	var raw map[string]any
	_ = json.Unmarshal([]byte(stdout), &raw)
	for _, k := range []string{"api", "host_netns", "vms"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("--json lacks %q: %s", k, stdout)
		}
	}
	if l.API != "http://127.0.0.1:9696" || l.HostNetns != host || len(l.VMs) != 2 || l.StateDir != state {
		t.Fatalf("lab = %+v", l)
	}

	t.Run("namespaces and OVS", func(t *testing.T) {
		nss, err := labNetns(name)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{name + "-vm1", name + "-vm2", host}; !reflect.DeepEqual(nss, want) {
			t.Errorf("namespaces %v, want %v", nss, want)
		}
		ovs := ovsd.OVS{Dir: state}
		out, err := exec.Command("ovs-vsctl", "--db="+ovs.DB(), "get", "Bridge", "br-int", "datapath_type").Output()
		if err != nil || strings.TrimSpace(string(out)) != "netdev" {
			t.Errorf("br-int datapath_type: %q, %v", out, err)
		}
		for _, d := range ovsd.Daemons {
			pid, _ := os.ReadFile(filepath.Join(state, d+".pid"))
			if !processMatches(strings.TrimSpace(string(pid)), state) {
				t.Errorf("%s is not running", d)
			}
		}
	})

	t.Run("VMs", func(t *testing.T) {
		seen := map[string]bool{}
		for i, v := range l.VMs {
			if v.Name != VMName(name, i+1) || v.Netns != v.Name || v.Tap != hybrid.TapName(v.PortID) {
				t.Errorf("VM %d = %+v", i+1, v)
			}
			if seen[v.IP] || !strings.HasPrefix(v.IP, "192.168.1.") {
				t.Errorf("VM %s IP %s", v.Name, v.IP)
			}
			seen[v.IP] = true
			var links []struct {
				IfName  string   `json:"ifname"`
				Address string   `json:"address"`
				MTU     int      `json:"mtu"`
				Flags   []string `json:"flags"`
				Addr    []struct {
					Local     string `json:"local"`
					PrefixLen int    `json:"prefixlen"`
				} `json:"addr_info"`
			}
			if err := json.Unmarshal([]byte(mustNS(t, v.Netns, "ip", "-j", "addr", "show", "dev", "eth0")), &links); err != nil || len(links) != 1 {
				t.Fatalf("eth0 of %s: %v", v.Netns, err)
			}
			e := links[0]
			if e.Address != v.MAC || e.MTU != l.MTU || len(e.Addr) == 0 || e.Addr[0].Local != v.IP || e.Addr[0].PrefixLen != 24 {
				t.Errorf("eth0 of %s: %+v, want %s %s/24 mtu %d", v.Netns, e, v.MAC, v.IP, l.MTU)
			}
			if out := mustNS(t, v.Netns, "ethtool", "-k", "eth0"); !strings.Contains(out, "tx-checksumming: off") {
				t.Errorf("eth0 of %s: tx checksumming not off", v.Netns)
			}
			if l.Gateway != "" && !strings.Contains(mustNS(t, v.Netns, "ip", "route"), "default via "+l.Gateway) {
				t.Errorf("%s: no default route via %s", v.Netns, l.Gateway)
			}
			if _, err := inNS(t, host, "ip", "link", "show", "dev", v.Tap); err != nil {
				t.Errorf("tap %s missing in %s: %v", v.Tap, host, err)
			}
		}
	})

	api := NewClient(host, l.API)
	defer api.Close()
	ctx := context.Background()
	t.Run("API objects", func(t *testing.T) {
		var nets struct {
			Networks []struct{ ID, Name string } `json:"networks"`
		}
		if err := api.Do(ctx, "GET", "/v2.0/networks?name=lab", nil, &nets); err != nil || len(nets.Networks) != 1 || nets.Networks[0].ID != l.NetworkID {
			t.Errorf("networks named lab: %+v, %v", nets, err)
		}
		var sn struct {
			Subnet struct {
				CIDR      string `json:"cidr"`
				NetworkID string `json:"network_id"`
			} `json:"subnet"`
		}
		if err := api.Do(ctx, "GET", "/v2.0/subnets/"+l.SubnetID, nil, &sn); err != nil || sn.Subnet.CIDR != CIDR || sn.Subnet.NetworkID != l.NetworkID {
			t.Errorf("subnet: %+v, %v", sn, err)
		}
		var sg struct {
			Group struct {
				Name  string `json:"name"`
				Rules []struct {
					Direction string `json:"direction"`
					Ethertype string `json:"ethertype"`
				} `json:"security_group_rules"`
			} `json:"security_group"`
		}
		if err := api.Do(ctx, "GET", "/v2.0/security-groups/"+l.SecurityGroupID, nil, &sg); err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, r := range sg.Group.Rules {
			dirs = append(dirs, r.Direction+" "+r.Ethertype)
		}
		sort.Strings(dirs)
		if sg.Group.Name != GroupName || !reflect.DeepEqual(dirs, []string{"egress IPv4", "egress IPv6"}) {
			t.Errorf("group %q rules %v, want lab with egress IPv4/IPv6 only", sg.Group.Name, dirs)
		}
		for _, v := range l.VMs {
			var p struct {
				Port struct {
					Name           string   `json:"name"`
					NetworkID      string   `json:"network_id"`
					HostID         string   `json:"binding:host_id"`
					DeviceOwner    string   `json:"device_owner"`
					MAC            string   `json:"mac_address"`
					SecurityGroups []string `json:"security_groups"`
				} `json:"port"`
			}
			if err := api.Do(ctx, "GET", "/v2.0/ports/"+v.PortID, nil, &p); err != nil {
				t.Fatal(err)
			}
			if p.Port.Name != v.Name || p.Port.NetworkID != l.NetworkID || p.Port.HostID != host || p.Port.DeviceOwner != DeviceOwner ||
				p.Port.MAC != v.MAC || !reflect.DeepEqual(p.Port.SecurityGroups, []string{l.SecurityGroupID}) {
				t.Errorf("port of %s: %+v", v.Name, p.Port)
			}
		}
	})

	t.Run("agent: ports ACTIVE, taps wired, whitelist enforced", func(t *testing.T) {
		ovs := ovsd.OVS{Dir: state}
		for _, v := range l.VMs {
			p, err := api.port(ctx, v.PortID)
			if err != nil || p.Status != "ACTIVE" {
				t.Errorf("port of %s: status %q, %v", v.Name, p.Status, err)
			}
			out := mustNS(t, host, "ip", "-j", "link", "show", "dev", v.Tap)
			if !strings.Contains(out, `"master":"`+hybrid.BridgeName(v.PortID)+`"`) {
				t.Errorf("%s not in %s: %s", v.Tap, hybrid.BridgeName(v.PortID), out)
			}
			tag, err := exec.Command("ovs-vsctl", "--db="+ovs.DB(), "get", "Port", hybrid.OVSVethName(v.PortID), "tag").Output()
			if err != nil || strings.TrimSpace(string(tag)) == "[]" {
				t.Errorf("%s has no tag on br-int: %q %v", hybrid.OVSVethName(v.PortID), tag, err)
			}
		}
		a, b := l.VMs[0], l.VMs[1]
		if _, err := inNS(t, a.Netns, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", b.IP); err == nil {
			t.Errorf("%s can ping %s before any ingress rule", a.Name, b.IP)
		}
		if err := api.Do(ctx, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
			"security_group_id": l.SecurityGroupID, "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}}, nil); err != nil {
			t.Fatal(err)
		}
		var perr error
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
			if _, perr = inNS(t, a.Netns, "ping", "-n", "-q", "-c", "1", "-W", "1", b.IP); perr == nil {
				break
			}
		}
		if perr != nil {
			t.Errorf("%s cannot ping %s after the ICMP rule: %v", a.Name, b.IP, perr)
		}
	})

	start = time.Now()
	if _, stderr, err := moat(t, bin, "lab", "down", name); err != nil {
		t.Fatalf("moat lab down: %v\n%s", err, stderr)
	}
	downDone = true
	t.Logf("lab down took %s", time.Since(start).Round(time.Millisecond))
	checkGone(t, name)
	if _, stderr, err := moat(t, bin, "lab", "down", name); err != nil {
		t.Errorf("second moat lab down: %v\n%s", err, stderr)
	}
}

// checkGone asserts that nothing of lab name is left.
func checkGone(t *testing.T, name string) {
	t.Helper()
	if nss, _ := labNetns(name); len(nss) != 0 {
		t.Errorf("namespaces left: %v", nss)
	}
	if _, err := os.Stat(StateDir(name)); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
	out, _ := exec.Command("ps", "-eo", "stat=,args=").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, StateDir(name)) && !strings.HasPrefix(strings.TrimSpace(line), "Z") {
			t.Errorf("process left: %s", line)
		}
	}
}

func processMatches(pid, s string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/cmdline")
	return err == nil && strings.Contains(string(b), s)
}

// A failing lab up (here: moat exits at once) removes what it built.
func TestUpFailureCleansUp(t *testing.T) {
	needLab(t)
	name := labName()
	t.Cleanup(func() { _ = Down(context.Background(), name, "") })
	var progress bytes.Buffer
	_, err := Up(context.Background(), Config{Name: name, VMs: 1, Moat: "/bin/false", Timeout: 10 * time.Second, Progress: &progress})
	if err == nil || !strings.Contains(err.Error(), "moat exited") {
		t.Fatalf("Up = %v, want moat exited\n%s", err, progress.String())
	}
	if !strings.Contains(progress.String(), "tearing down") {
		t.Errorf("no teardown in progress:\n%s", progress.String())
	}
	checkGone(t, name)
}

// lab up refuses to build over an existing lab and leaves it alone.
func TestUpRefusesExisting(t *testing.T) {
	needLab(t)
	name := labName()
	t.Cleanup(func() { _ = Down(context.Background(), name, "") })
	if err := dataplane.AddNetns(context.Background(), HostNetns(name)); err != nil {
		t.Fatal(err)
	}
	_, err := Up(context.Background(), Config{Name: name, VMs: 1})
	if err == nil || !strings.Contains(err.Error(), "moat lab down "+name) {
		t.Fatalf("Up over an existing lab = %v", err)
	}
	if !dataplane.NetnsExists(HostNetns(name)) {
		t.Error("Up deleted the existing lab's namespace")
	}
}

// lab down on a half-built lab: namespaces, a stale pid file naming a
// process that is not the lab's (never killed) and a state directory.
func TestDownHalfBuilt(t *testing.T) {
	needLab(t)
	ctx := context.Background()
	name := labName()
	t.Cleanup(func() { _ = Down(ctx, name, "") })
	for _, ns := range []string{HostNetns(name), VMName(name, 1), VMName(name, 12)} {
		if err := dataplane.AddNetns(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	// A namespace that merely shares the prefix is not the lab's.
	other := name + "-other"
	if err := dataplane.AddNetns(ctx, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dataplane.DeleteNetns(ctx, other) })
	state := StateDir(name)
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, moatPid), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		if err := Down(ctx, name, ""); err != nil {
			t.Fatalf("Down (round %d): %v", round, err)
		}
	}
	checkGone(t, name)
	if !dataplane.NetnsExists(other) {
		t.Errorf("Down deleted %s", other)
	}
}

// TestLabHosts runs `moat lab up NAME --hosts 2 --vms 2 --json` and `moat
// lab down NAME` with the real binary: the JSON the issue names, a server
// and an agent per host (each with its own token and OVS, br-eth1 holding
// the uplink), the VMs spread over the hosts and isolated by the group
// until a rule; down leaves nothing.
func TestLabHosts(t *testing.T) {
	needLab(t)
	bin := moatbin.Build(t)
	name := labName()
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if err := Down(context.Background(), name, ""); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	stdout, stderr, err := moat(t, bin, "lab", "up", name, "--hosts", "2", "--vms", "2", "--json", "--timeout", "90s")
	if err != nil {
		t.Fatalf("moat lab up --hosts 2: %v\nstderr:\n%s", err, stderr)
	}
	var raw struct {
		API      string `json:"api"`
		APINetns string `json:"api_netns"`
		Hosts    []struct {
			Name  string `json:"name"`
			Netns string `json:"netns"`
		} `json:"hosts"`
		VMs []struct {
			Name   string `json:"name"`
			Netns  string `json:"netns"`
			Host   string `json:"host"`
			PortID string `json:"port_id"`
			IP     string `json:"ip"`
			MAC    string `json:"mac"`
			Tap    string `json:"tap"`
		} `json:"vms"`
	}
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	h1, h2 := HostName(name, 1), HostName(name, 2)
	if raw.API != MultiAPIURL || raw.APINetns != APINetns(name) || len(raw.Hosts) != 2 ||
		raw.Hosts[0].Name != h1 || raw.Hosts[0].Netns != h1 || raw.Hosts[1].Netns != h2 || len(raw.VMs) != 2 {
		t.Fatalf("--json: %s", stdout)
	}
	for i, v := range raw.VMs {
		if want := []string{h1, h2}[i]; v.Host != want || v.Netns != VMName(name, i+1) || v.PortID == "" || v.IP == "" || v.MAC == "" || v.Tap == "" {
			t.Errorf("vm %d: %+v, want it on %s with every field set", i+1, v, want)
		}
	}
	nss, err := labNetns(name)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{VMName(name, 1), VMName(name, 2), h1, h2, APINetns(name), SwitchNetns(name)}; !reflect.DeepEqual(nss, want) {
		t.Errorf("namespaces %v, want %v", nss, want)
	}
	for i := 1; i <= 2; i++ {
		ovs := ovsd.OVS{Dir: HostStateDir(StateDir(name), i)}
		out, err := exec.Command("ovs-vsctl", "--db="+ovs.DB(), "list-ports", PhysBridge).Output()
		if err != nil || !strings.Contains(string(out), Uplink) || !strings.Contains(string(out), "phy-"+PhysBridge) {
			t.Errorf("host %d: ports of %s: %q, %v; want %s and phy-%s", i, PhysBridge, out, err, Uplink, PhysBridge)
		}
		b, err := os.ReadFile(AgentPidFile(StateDir(name), i))
		if err != nil || !processMatches(strings.TrimSpace(string(b)), "--bridge-mappings") {
			t.Errorf("host %d: no agent running with --bridge-mappings (%v)", i, err)
		}
		if fi, err := os.Stat(filepath.Join(HostStateDir(StateDir(name), i), tokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("host %d: token file: %v %v", i, fi, err)
		}
	}
	if _, err := inNS(t, raw.VMs[0].Netns, "ping", "-c1", "-W1", raw.VMs[1].IP); err == nil {
		t.Errorf("vm1 (%s) pings vm2 (%s) without a rule", h1, h2)
	}
	// Each agent serves its metrics on the management network.
	for i := 1; i <= 2; i++ {
		out, err := inNS(t, APINetns(name), "curl", "-sf", "http://"+AgentMetricsAddr(i)+"/metrics")
		if err != nil || !strings.Contains(out, `moat_agent_ports{state="enforced"} 1`) {
			t.Errorf("host %d's agent metrics: %v\n%.300s", i, err, out)
		}
	}
	if _, stderr, err := moat(t, bin, "lab", "down", name); err != nil {
		t.Fatalf("lab down: %v\n%s", err, stderr)
	}
	downDone = true
	checkGone(t, name)
}
