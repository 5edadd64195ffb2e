package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files of moat trace, explain and protocols")

const traceData = "../../internal/trace/testdata"

// neutronFiles are the flags that read a Neutron scenario's dump.
func neutronFiles(scenario string) []string {
	d := filepath.Join(traceData, "neutron", scenario)
	return []string{"--iptables-save", filepath.Join(d, "iptables-save.txt"),
		"--ip6tables-save", filepath.Join(d, "ip6tables-save.txt"), "--ipset", filepath.Join(d, "ipset.txt")}
}

// runCmd runs a subcommand in-process.
func runCmd(t *testing.T, newCmd func() *cobra.Command, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(traceData, "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/moat -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./cmd/moat -update rewrites it):\n--- got\n%s", name, got)
	}
}

func TestTraceGolden(t *testing.T) {
	ipip := []string{"--port", "c0a350e0", "--direction", "ingress", "--protocol", "ipip", "--src", "198.51.100.7"}
	cases := []struct {
		name string
		cmd  func() *cobra.Command
		args []string
	}{
		// The story: Neutron renders an "ipip" rule as -p ipip (94) and the
		// IP-in-IP packet is dropped; moat renders it as protocol 4.
		{"trace_ipip_named_neutron.txt", newTraceCmd, append(neutronFiles("ipip_named"), ipip...)},
		{"trace_ipip_named_moat.txt", newTraceCmd, append([]string{"--input", filepath.Join(traceData, "ipip_named.json")}, ipip...)},
		{"trace_address_group_moat.txt", newTraceCmd, []string{"--input", filepath.Join(traceData, "address_group.json"),
			"--port", "c0a350e0", "--direction", "ingress", "--protocol", "tcp", "--dport", "22", "--src", "203.0.113.7"}},
		{"trace_basic_ipip.json", newTraceCmd, append(append(neutronFiles("basic"), ipip...), "--json")},
		{"trace_remote_group_member.txt", newTraceCmd, append(neutronFiles("ipip_remote_group"),
			"--port", "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d", "--direction", "ingress", "--protocol", "tcp", "--src", "192.168.1.30", "--dport", "22")},
		{"trace_spoofed_mac.txt", newTraceCmd, append(neutronFiles("basic"),
			"--tap", "tapc0a350e0-43", "--direction", "egress", "--protocol", "udp", "--dst", "8.8.8.8", "--dport", "53", "--src-mac", "fa:16:3e:00:00:99")},
		{"explain_ipip_remote_group_moat.txt", newExplainCmd, []string{"--input", filepath.Join(traceData, "sample.json"), "--scenario", "ipip_remote_group", "--port", "c0a350e0"}},
		{"explain_counters.txt", newExplainCmd, []string{"--iptables-save", filepath.Join(traceData, "counters", "iptables-save-c.txt"), "--port", "c0a350e0"}},
		{"explain_counters.json", newExplainCmd, []string{"--iptables-save", filepath.Join(traceData, "counters", "iptables-save-c.txt"), "--port", "c0a350e0", "--json"}},
		{"protocols.txt", newProtocolsCmd, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runCmd(t, c.cmd, "", c.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			golden(t, c.name, out)
		})
	}
}

// The --json shape the issue specifies.
func TestTraceJSONShape(t *testing.T) {
	out, err := runCmd(t, newTraceCmd, "", append(neutronFiles("basic"),
		"--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "192.168.1.13", "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res["verdict"] != "DROP" {
		t.Errorf("verdict %v", res["verdict"])
	}
	path, ok := res["path"].([]any)
	if !ok || len(path) == 0 {
		t.Fatalf("path %v", res["path"])
	}
	for _, p := range path {
		step := p.(map[string]any)
		for _, k := range []string{"table", "chain", "rule_number", "rule"} {
			if _, ok := step[k]; !ok {
				t.Errorf("path step without %q: %v", k, step)
			}
		}
	}
	d, ok := res["decided_by"].(map[string]any)
	if !ok {
		t.Fatalf("decided_by %v", res["decided_by"])
	}
	want := map[string]any{"table": "filter", "chain": "neutron-openvswi-sg-fallback", "rule_number": 1.0, "origin_kind": "default-drop"}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("decided_by.%s = %v, want %v", k, d[k], v)
		}
	}
	for _, k := range []string{"rule", "origin"} {
		if s, _ := d[k].(string); s == "" {
			t.Errorf("decided_by.%s empty", k)
		}
	}
	if s, _ := res["suggestion"].(string); !strings.Contains(s, "--protocol 4 ") {
		t.Errorf("suggestion %q", s)
	}
}

func TestTraceBatch(t *testing.T) {
	packets := strings.Join([]string{
		`{"port": "c0a350e0", "direction": "ingress", "protocol": 4, "src": "192.168.1.13"}`,
		`# comments and blank lines are skipped`,
		``,
		`{"port": "c0a350e0", "direction": "ingress", "protocol": "icmp", "src": "10.0.0.1", "icmp_type": 8}`,
		`{"port": "c0a350e0", "direction": "egress", "protocol": "tcp", "dst": "1.1.1.1", "dport": "443"}`,
	}, "\n")
	out, err := runCmd(t, newTraceCmd, packets, append(neutronFiles("basic"), "--packets", "-")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d result lines, want 3:\n%s", len(lines), out)
	}
	for i, want := range []string{"DROP", "ACCEPT", "ACCEPT"} {
		var res struct {
			Verdict string `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &res); err != nil || res.Verdict != want {
			t.Errorf("line %d: %v verdict %q, want %q", i+1, err, res.Verdict, want)
		}
	}

	// A bad line is reported on its own line; the others are traced and
	// the command fails.
	bad := `{"port": "c0a350e0", "direction": "sideways", "protocol": 4, "src": "192.168.1.13"}` + "\n" +
		`{"port": "c0a350e0", "protocol": 4, "nonsense": 1}` + "\n" +
		`{"port": "c0a350e0", "direction": "ingress", "protocol": 4, "src": "192.168.1.13"}` + "\n"
	out, err = runCmd(t, newTraceCmd, bad, append(neutronFiles("basic"), "--packets", "-")...)
	if err == nil || !strings.Contains(err.Error(), "2 of the packets") {
		t.Errorf("error %v, want 2 of the packets failed", err)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"line":1`) || !strings.Contains(lines[0], "sideways") ||
		!strings.Contains(lines[1], "nonsense") || !strings.Contains(lines[2], `"verdict":"DROP"`) {
		t.Errorf("batch with errors:\n%s", out)
	}
}

func TestTraceErrors(t *testing.T) {
	basic := neutronFiles("basic")
	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-X nonsense\nCOMMIT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{append(basic, "--port", "c0a350e0", "--protocol", "4", "--src", "10.0.0.1"), "give the direction"},
		{append(basic, "--port", "c0a350e0", "--direction", "up", "--protocol", "4", "--src", "10.0.0.1"), `direction "up"`},
		{append(basic, "--port", "c0a350e0", "--tap", "tapc0a350e0-43", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1"), "exactly one of --port and --tap"},
		{append(basic, "--port", "ffff", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1"), `no port "ffff" in the rules (the rules name tapc0a350e0-43)`},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "ipipip", "--src", "10.0.0.1"), `unknown protocol "ipipip"`},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4"), "give --src (the remote address)"},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.300"), `"10.0.0.300" is not an IP address`},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1", "--dport", "22"), "has no ports"},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "tcp", "--src", "10.0.0.1", "--dport", "70000"), "--dport"},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--hook", "input", "--protocol", "4", "--src", "10.0.0.1"), "--hook input is for packets from the VM"},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1", "--state", "half-open"), "unknown conntrack state"},
		{append(basic, "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1", "--dst", "2001:db8::1"), "different families"},
		{[]string{"--input", filepath.Join(traceData, "sample.json"), "--iptables-save", "x", "--port", "c0a350e0"}, "exclude each other"},
		{[]string{"--input", filepath.Join(traceData, "sample.json"), "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1"}, "choose one"},
		{[]string{"--iptables-save", "/nonexistent/file"}, "no such file"},
		{[]string{"--iptables-save", bad, "--port", "x", "--direction", "ingress", "--protocol", "4", "--src", "10.0.0.1"}, "line 4: unexpected line"},
		{[]string{"--ipset", bad}, "--ipset needs --iptables-save"},
		{[]string{"--iptables-save", filepath.Join(traceData, "neutron", "basic", "iptables-save.txt"), "--port", "c0a350e0", "--direction", "ingress", "--protocol", "4", "--src", "2001:db8::1"}, "no IPv6 rules"},
	}
	for _, c := range cases {
		out, err := runCmd(t, newTraceCmd, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("moat trace %s: error %v, want one containing %q\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
	if _, err := runCmd(t, newExplainCmd, "", append(basic, "--port", "0000")...); err == nil || !strings.Contains(err.Error(), `no port "0000"`) {
		t.Errorf("explain of an unknown port: %v", err)
	}
}

func TestProtocolsJSON(t *testing.T) {
	out, err := runCmd(t, newProtocolsCmd, "", "--all", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Number   int      `json:"number"`
		IANA     string   `json:"iana"`
		Neutron  []string `json:"neutron_names"`
		Iptables string   `json:"iptables"`
		Note     string   `json:"note"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 256 {
		t.Fatalf("%d rows with --all, want 256", len(rows))
	}
	four, ninetyFour := rows[4], rows[94]
	if strings.Join(four.Neutron, ",") != "ipip" || four.Iptables != "ipencap" || !strings.Contains(four.Note, "94") {
		t.Errorf("row 4: %+v", four)
	}
	if len(ninetyFour.Neutron) != 0 || ninetyFour.Iptables != "ipip" || ninetyFour.IANA != "IPIP" {
		t.Errorf("row 94: %+v", ninetyFour)
	}
	if r := rows[58]; strings.Join(r.Neutron, ",") != "icmpv6,ipv6-icmp" || r.Iptables != "ipv6-icmp" {
		t.Errorf("row 58: %+v", r)
	}
}
