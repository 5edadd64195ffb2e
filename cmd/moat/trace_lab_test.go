package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The story of mission.md, end to end with real packets: a VM's group
// allows IP-in-IP by the API name "ipip", which Neutron renders as -p ipip
// (94); IP-in-IP packets to the VM are dropped; moat trace names the
// default drop and suggests a rule with --protocol 4; with that rule the
// packets arrive, and moat explain shows the rule's counter move.
//
// The lab is shared/reference/lab/lab-up.sh (namespaces, a Linux bridge per
// port, OVS br-int); the rules are what Neutron 21 installs for the spec
// (moat render --neutron-compat, which the parity tests hold byte for byte
// to Neutron's output), loaded with iptables-restore.

const labDir = "../../../shared/reference/lab"

// The lab's two ports (lab-up.sh fixes their names, addresses and MACs;
// the ids only need to begin like the devices).
const (
	labPort1 = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d" // vm1 192.168.1.12
	labPort2 = "5f2b7e1d-9a00-4b00-8c00-000000000002" // vm2 192.168.1.13
	labGroup = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
)

func labSpec(extra ...map[string]any) map[string]any {
	rules := []any{
		map[string]any{"id": "eeeeeeee-0000-4000-8000-000000000001", "direction": "egress", "ethertype": "IPv4"},
		map[string]any{"id": "eeeeeeee-0000-4000-8000-000000000002", "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"},
		map[string]any{"id": "eeeeeeee-0000-4000-8000-000000000003", "direction": "ingress", "ethertype": "IPv4", "protocol": "ipip"},
	}
	for _, r := range extra {
		rules = append(rules, r)
	}
	return map[string]any{
		"name":            "lab",
		"options":         map[string]any{"enable_ipset": true, "comment_iptables_rules": true},
		"security_groups": []any{map[string]any{"id": labGroup, "name": "tunnel", "stateful": true, "rules": rules}},
		"ports": []any{
			map[string]any{"id": labPort1, "mac_address": "fa:16:3e:c3:ea:d5", "fixed_ips": []string{"192.168.1.12"}, "security_groups": []string{labGroup}},
			map[string]any{"id": labPort2, "mac_address": "fa:16:3e:7d:21:9b", "fixed_ips": []string{"192.168.1.13"}, "security_groups": []string{labGroup}},
		},
	}
}

func needLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: not with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("lab test: needs root")
	}
	for _, bin := range []string{"ip", "iptables-nft-restore", "iptables-legacy-restore", "ipset", "ethtool", "ovsdb-tool", "ovs-vswitchd", "/usr/bin/python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("lab test: %s not installed", bin)
		}
	}
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		t.Skip("lab test: no br_netfilter (/proc/sys/net/bridge)")
	}
	if _, err := os.Stat(filepath.Join(labDir, "lab-up.sh")); err != nil {
		t.Skipf("lab test: %v", err)
	}
}

func TestTraceLabIPIP(t *testing.T) {
	needLab(t)
	for _, backend := range []string{"iptables-nft", "iptables-legacy"} {
		t.Run(backend, func(t *testing.T) { labIPIP(t, backend) })
	}
}

func labIPIP(t *testing.T, backend string) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	lab := "mt" + hex.EncodeToString(b)
	state := filepath.Join(t.TempDir(), "lab")
	env := append(os.Environ(), "LAB="+lab, "LAB_STATE="+state, "XTABLES_LOCKFILE="+filepath.Join(t.TempDir(), "xtables.lock"))
	script := func(name string) *exec.Cmd {
		c := exec.Command("bash", filepath.Join(labDir, name))
		c.Env = env
		return c
	}
	t.Cleanup(func() {
		if out, err := script("lab-down.sh").CombinedOutput(); err != nil {
			t.Logf("lab-down: %v\n%s", err, out)
		}
	})
	if out, err := script("lab-up.sh").CombinedOutput(); err != nil {
		t.Fatalf("lab-up: %v\n%s", err, out)
	}
	host := lab + "-host"
	inNetns := func(ns string, stdin string, args ...string) string {
		t.Helper()
		c := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
		c.Env = env
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("ip netns exec %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	load := func(sp map[string]any) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "spec.json")
		data, _ := json.Marshal(sp)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := render(t, "", "--input", path, "--neutron-compat")
		if err != nil {
			t.Fatal(err)
		}
		s := sections(t, out)
		if strings.TrimSpace(s["ipset save"]) != "" {
			inNetns(host, s["ipset save"], "ipset", "restore", "-exist")
		}
		inNetns(host, s["iptables-save"], backend+"-restore")
		inNetns(host, s["ip6tables-save"], strings.Replace(backend, "iptables", "ip6tables", 1)+"-restore")
	}
	// send sends 5 IP-in-IP packets from vm2 to vm1 and returns how many
	// arrived.
	send := func() int {
		t.Helper()
		ready := filepath.Join(t.TempDir(), "ready")
		recv := exec.Command("ip", "netns", "exec", lab+"-vm1", "/usr/bin/python3", filepath.Join(labDir, "pkt.py"),
			"recv", "--proto", "4", "--src", "192.168.1.13", "--timeout", "2", "--ready-file", ready)
		var out strings.Builder
		recv.Stdout = &out
		if err := recv.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		inNetns(lab+"-vm2", "", "/usr/bin/python3", filepath.Join(labDir, "pkt.py"), "send", "--proto", "4", "--dst", "192.168.1.12", "--count", "5")
		if err := recv.Wait(); err != nil {
			t.Fatalf("receiver: %v", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("receiver printed %q", out.String())
		}
		return n
	}
	traceArgs := []string{"--netns", host, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "192.168.1.13", "--json"}
	type result struct {
		Verdict   string `json:"verdict"`
		DecidedBy struct {
			Rule       string `json:"rule"`
			OriginKind string `json:"origin_kind"`
		} `json:"decided_by"`
		Suggestion string `json:"suggestion"`
	}
	traceLive := func() result {
		t.Helper()
		out, err := runCmd(t, newTraceCmd, "", traceArgs...)
		if err != nil {
			t.Fatalf("moat trace: %v\n%s", err, out)
		}
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// counter returns the packet counter of the port's rule whose text
	// contains sub, from moat explain.
	counter := func(sub string) uint64 {
		t.Helper()
		out, err := runCmd(t, newExplainCmd, "", "--netns", host, "--port", "c0a350e0", "--json")
		if err != nil {
			t.Fatalf("moat explain: %v\n%s", err, out)
		}
		var ex struct {
			Rules []struct {
				Family, Chain, Rule string
				Packets             uint64
			} `json:"rules"`
		}
		if err := json.Unmarshal([]byte(out), &ex); err != nil {
			t.Fatal(err)
		}
		for _, r := range ex.Rules {
			if r.Family == "IPv4" && strings.HasPrefix(r.Chain, "neutron-openvswi-ic0a350e0") && strings.Contains(r.Rule, sub) {
				return r.Packets
			}
		}
		t.Fatalf("explain lists no rule with %q:\n%s", sub, out)
		return 0
	}

	// 1. Neutron's rules: the ipip rule is -p ipip (94); IP-in-IP is dropped.
	load(labSpec())
	if n := send(); n != 0 {
		t.Fatalf("%d IP-in-IP packets arrived through Neutron's -p ipip rule, want 0", n)
	}
	if n := counter("sg-fallback"); n < 5 {
		t.Errorf("fallback counter %d after 5 dropped packets", n)
	}
	r := traceLive()
	if r.Verdict != "DROP" || r.DecidedBy.OriginKind != "default-drop" {
		t.Fatalf("trace before the fix: %+v", r)
	}
	want := "openstack security group rule create <group> --ingress --ethertype IPv4 --protocol 4 --remote-ip 192.168.1.13/32"
	if r.Suggestion != want {
		t.Fatalf("suggestion %q, want %q", r.Suggestion, want)
	}

	// 2. The fix: the suggested rule, as the API would store it.
	rule := suggestionRule(t, r.Suggestion)
	rule["id"] = "eeeeeeee-0000-4000-8000-000000000004"
	load(labSpec(rule))
	if n := send(); n != 5 {
		t.Fatalf("%d of 5 IP-in-IP packets arrived after the fix", n)
	}
	r = traceLive()
	if r.Verdict != "ACCEPT" || r.DecidedBy.OriginKind != "security-group-rule" || !strings.Contains(r.DecidedBy.Rule, "-s 192.168.1.13/32 -p ipencap") {
		t.Fatalf("trace after the fix: %+v", r)
	}
	if n := counter("-s 192.168.1.13/32 -p ipencap"); n != 5 {
		t.Errorf("the new rule's counter is %d, want 5", n)
	}

	// 3. To the host itself: trace says Neutron's INPUT dispatch rule
	// (--physdev-is-bridged) cannot match at INPUT; the kernel's counters
	// must agree.
	inNetns(host, "", "ip", "addr", "add", "192.168.1.1/24", "dev", "qbrc0a350e0-43")
	inputPolicy := func() uint64 {
		t.Helper()
		save := inNetns(host, "", backend+"-save", "-c", "-t", "filter")
		for _, l := range strings.Split(save, "\n") {
			if rest, ok := strings.CutPrefix(l, ":INPUT ACCEPT ["); ok {
				p, _, _ := strings.Cut(rest, ":")
				n, err := strconv.ParseUint(p, 10, 64)
				if err == nil {
					return n
				}
			}
		}
		t.Fatalf("no INPUT policy counter in:\n%s", save)
		return 0
	}
	before := inputPolicy()
	inNetns(lab+"-vm1", "", "/usr/bin/python3", filepath.Join(labDir, "pkt.py"), "send", "--proto", "1", "--dst", "192.168.1.1", "--count", "3")
	out, err := runCmd(t, newExplainCmd, "", "--netns", host, "--port", "c0a350e0", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var ex struct {
		Rules []struct {
			Family, Chain string
			Packets       uint64
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, r := range ex.Rules {
		if r.Family == "IPv4" && r.Chain == "neutron-openvswi-INPUT" {
			seen = true
			if r.Packets != 0 {
				t.Errorf("the INPUT dispatch rule counted %d packets; trace models it as never matching", r.Packets)
			}
		}
	}
	if !seen {
		t.Errorf("explain shows no INPUT rule:\n%s", out)
	}
	out, err = runCmd(t, newTraceCmd, "", "--netns", host, "--port", "c0a350e0", "--direction", "egress", "--hook", "input",
		"--protocol", "icmp", "--icmp-type", "8", "--dst", "192.168.1.1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var in result
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatal(err)
	}
	if in.Verdict != "ACCEPT" || in.DecidedBy.OriginKind != "chain-policy" {
		t.Errorf("trace to the host: %+v", in)
	}
	// The packets did reach INPUT: its policy counted them.
	if after := inputPolicy(); after < before+3 {
		t.Errorf("INPUT policy counter went from %d to %d, want +3", before, after)
	}
}

// suggestionRule turns the suggested openstack command into the rule body
// the API would receive.
func suggestionRule(t *testing.T, cmd string) map[string]any {
	t.Helper()
	f := strings.Fields(cmd)
	if len(f) < 5 || strings.Join(f[:4], " ") != "openstack security group rule" || f[4] != "create" {
		t.Fatalf("not a rule create command: %q", cmd)
	}
	rule := map[string]any{}
	for i := 6; i < len(f); i++ {
		arg := func() string {
			i++
			if i >= len(f) {
				t.Fatalf("%s without a value in %q", f[i-1], cmd)
			}
			return f[i]
		}
		switch f[i] {
		case "--ingress", "--egress":
			rule["direction"] = f[i][2:]
		case "--ethertype":
			rule["ethertype"] = arg()
		case "--protocol":
			rule["protocol"] = arg()
		case "--remote-ip":
			rule["remote_ip_prefix"] = arg()
		case "--dst-port":
			lo, hi, _ := strings.Cut(arg(), ":")
			if hi == "" {
				hi = lo
			}
			rule["port_range_min"], rule["port_range_max"] = lo, hi
		default:
			t.Fatalf("unexpected %q in %q", f[i], cmd)
		}
	}
	return rule
}

// In a namespace without rules, live mode says where to run instead of
// failing on an empty dump.
func TestTraceLiveEmptyNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"ip", "iptables-nft-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "mt" + hex.EncodeToString(b) + "-empty"
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	_, err := runCmd(t, newTraceCmd, "", "--netns", ns, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1")
	if err == nil || !strings.Contains(err.Error(), "shows no iptables tables in network namespace "+ns) {
		t.Errorf("error %v", err)
	}
	_, err = runCmd(t, newExplainCmd, "", "--netns", ns, "--backend", "iptables-nft", "--port", "c0a350e0")
	if err == nil || !strings.Contains(err.Error(), "no iptables tables") {
		t.Errorf("explain: error %v", err)
	}
}
