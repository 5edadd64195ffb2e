package rulesrc

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables/iptablestest"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

const traceData = "../testdata"

func neutronFiles(scenario string) Source {
	d := filepath.Join(traceData, "neutron", scenario)
	return Source{IPTablesSave: filepath.Join(d, "iptables-save.txt"), IP6TablesSave: filepath.Join(d, "ip6tables-save.txt"), IPSets: filepath.Join(d, "ipset.txt")}
}

func TestLoadFilesAndSpecs(t *testing.T) {
	ctx := context.Background()
	h, where, err := func() (*trace.Host, string, error) { s := neutronFiles("ipip_remote_group"); return s.Load(ctx, nil) }()
	if err != nil {
		t.Fatal(err)
	}
	if h.IPv4 == nil || h.IPv6 == nil || len(h.Sets) != 2 || !strings.HasPrefix(where, "files ") || strings.Count(where, ", ") != 2 {
		t.Errorf("files: v4 %v v6 %v sets %d, %q", h.IPv4 != nil, h.IPv6 != nil, len(h.Sets), where)
	}
	s := Source{Spec: filepath.Join(traceData, "sample.json"), Scenario: "ipip_remote_group"}
	h, where, err = s.Load(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Provenance == nil || where != "what moat compiles for scenario ipip_remote_group of "+s.Spec || s.WantsProvenance("c0a3") {
		t.Errorf("spec: provenance %v, %q", h.Provenance != nil, where)
	}
	b, err := os.ReadFile(filepath.Join(traceData, "ipip_named.json"))
	if err != nil {
		t.Fatal(err)
	}
	s = Source{Spec: "-"}
	if _, where, err = s.Load(ctx, strings.NewReader(string(b))); err != nil || where != "what moat compiles for scenario ipip_named of -" {
		t.Errorf("spec on stdin: %v %q", err, where)
	}

	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-X nonsense\nCOMMIT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src  Source
		want string
	}{
		{Source{Spec: "x.json", IPTablesSave: "y"}, "exclude each other"},
		{Source{Spec: filepath.Join(traceData, "sample.json")}, "choose one"},
		{Source{IPTablesSave: "/nonexistent/file"}, "no such file"},
		{Source{IPTablesSave: bad}, "line 4: unexpected line"},
		{Source{IPSets: bad}, "--ipset needs --iptables-save"},
		{Source{IPTablesSave: filepath.Join(traceData, "neutron", "basic", "iptables-save.txt"), IPSets: bad}, bad + ": ipset line 1"},
	} {
		if _, _, err := c.src.Load(ctx, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.src, err, c.want)
		}
	}
}

// kernel is a host's tools for Load's live mode: iptables from the fake
// kernel, the rest canned (a command without an answer fails).
type kernel struct {
	ipt  *iptablestest.Kernel
	out  map[string]string
	runs []string
}

func (k *kernel) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	k.runs = append(k.runs, cmd)
	if out, ok := k.out[cmd]; ok {
		return []byte(out), nil
	}
	if strings.HasPrefix(name, "ip") && strings.Contains(name, "tables") {
		return k.ipt.Run(ctx, stdin, name, args...)
	}
	return nil, &dataplane.CommandError{Cmd: cmd, Err: fmt.Errorf("exit status 127"), Stderr: name + ": not found"}
}

func TestLoadLive(t *testing.T) {
	ctx := context.Background()
	// The kernel holds what moat compiles for the sample's scenario.
	file, err := spec.Load(nil, filepath.Join(traceData, "sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := file.CompileState("sample.json", "basic", false)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := firewall.Compile(st)
	if err != nil {
		t.Fatal(err)
	}
	k := &kernel{ipt: iptablestest.New(), out: map[string]string{}}
	for cmd, tables := range map[string]*firewall.Tables{"iptables-nft-restore": &rs.IPv4, "ip6tables-nft-restore": &rs.IPv6} {
		var b strings.Builder
		if err := firewall.WriteSave(&b, &tables.Filter, &tables.Raw); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Run(ctx, []byte(b.String()), cmd); err != nil {
			t.Fatal(err)
		}
	}
	s := Source{Exec: k}
	h, where, err := s.Load(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if where != "the kernel (iptables-nft); no ipsets: ipset save: exit status 127: ipset: not found" {
		t.Errorf("where %q", where)
	}
	res, err := h.Trace(trace.Query{Port: "c0a350e0", Direction: trace.Ingress, Protocol: "icmp", Src: "10.0.0.1"})
	if err != nil || res.Verdict != trace.VerdictAccept {
		t.Errorf("trace: %v %+v", err, res)
	}
	// No layout in nft, legacy tables present: the legacy backend.
	k = &kernel{ipt: iptablestest.New(), out: map[string]string{"cat /proc/net/ip_tables_names": "filter\n"}}
	s = Source{Exec: k}
	if _, _, err := s.Load(ctx, nil); err == nil || !strings.Contains(err.Error(), "iptables-legacy-save shows no iptables tables in this network namespace") {
		t.Errorf("legacy: %v (ran %q)", err, k.runs)
	}
	// A backend named: only its tools run.
	k = &kernel{ipt: iptablestest.New(), out: map[string]string{}}
	s = Source{Exec: k, Backend: "legacy", Netns: "h1"}
	if _, _, err := s.Load(ctx, nil); err == nil || !strings.Contains(err.Error(), "in network namespace h1") || k.runs[0] != "iptables-legacy-save -c" {
		t.Errorf("named backend: %v (ran %q)", err, k.runs)
	}
	s = Source{Exec: k, Backend: "bogus"}
	if _, _, err := s.Load(ctx, nil); err == nil || !strings.Contains(err.Error(), `unknown iptables backend "bogus"`) {
		t.Errorf("bad backend: %v", err)
	}
}

// The rule ids of a host whose agent runs --no-ipset --no-comments come
// from the store, compiled as the kernel's rules were.
func TestProvenanceFromTheStore(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const group = "14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b"
	var ports []string
	var ssh string
	err = st.Write(ctx, func(tx *store.Tx) error {
		n := &neutron.Network{ProjectID: "p1", Name: "n", AdminStateUp: true, Status: "ACTIVE", MTU: 1450,
			PortSecurityEnabled: true, NetworkType: neutron.NetTypeLocal}
		if err := tx.CreateNetwork(ctx, n); err != nil {
			return err
		}
		sn := &neutron.Subnet{ProjectID: "p1", NetworkID: n.ID, Name: "s", IPVersion: 4, CIDR: netip.MustParsePrefix("10.0.0.0/24")}
		if err := tx.CreateSubnet(ctx, sn); err != nil {
			return err
		}
		self, tcp, port := group, "tcp", 22
		rules := []neutron.SecurityGroupRule{
			{ProjectID: "p1", Direction: neutron.Ingress, Ethertype: "IPv4", Protocol: &tcp, PortRangeMin: &port, PortRangeMax: &port, RemoteGroupID: &self},
			{ProjectID: "p1", Direction: neutron.Egress, Ethertype: "IPv4"},
		}
		if err := tx.CreateSecurityGroup(ctx, &neutron.SecurityGroup{ID: group, ProjectID: "p1", Name: "web", Stateful: true}, rules, false); err != nil {
			return err
		}
		ssh = rules[0].ID
		for i := 0; i < 2; i++ {
			p := &neutron.Port{ProjectID: "p1", NetworkID: n.ID, Name: fmt.Sprint("p", i),
				MACAddress: fmt.Sprintf("fa:16:3e:00:00:%02x", i), AdminStateUp: true, Status: neutron.PortStatusDown,
				PortSecurityEnabled: true, HostID: "h1", VNICType: "normal", VIFType: neutron.VIFTypeOVS,
				FixedIPs:            []neutron.FixedIP{{SubnetID: sn.ID, IPAddress: netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", 10+i))}},
				AllowedAddressPairs: []neutron.AddressPair{}, SecurityGroups: []string{group}}
			if err := tx.CreatePort(ctx, p); err != nil {
				return err
			}
			ports = append(ports, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var snap *store.HostSnapshot
	if err := st.Read(ctx, func(tx *store.Tx) error {
		var err error
		snap, err = tx.HostSnapshot(ctx, "h1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// What the agent installed: a rule per member, no comments.
	kernel, err := moatrules.Host(agent.HostState(snap, firewall.Options{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	kernel.Provenance = nil
	if note := Provenance(ctx, st, "test.db", kernel, ports[0][:8], false); note != "; rule ids from test.db" {
		t.Fatalf("note %q", note)
	}
	res, err := kernel.Trace(trace.Query{Port: ports[0], Direction: trace.Ingress, Protocol: "tcp", Src: "10.0.0.11", DstPort: "22"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != trace.VerdictAccept || len(res.DecidedBy.Rules) != 1 || res.DecidedBy.Rules[0].RuleID != ssh {
		t.Errorf("trace: %s by %+v, want rule %s", res.Verdict, res.DecidedBy, ssh)
	}
	if note := Provenance(ctx, st, "test.db", kernel, "ffffffff", false); note != "; rule ids unknown: port ffffffff is not in test.db" {
		t.Errorf("unknown port: note %q", note)
	}

	// An nftables host: the store names the port's groups.
	f, err := os.Open(filepath.Join("..", "testdata", "nft", "ipip_remote_group.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nh, err := trace.LoadNFT(f)
	if err != nil {
		t.Fatal(err)
	}
	if note := NFTProvenance(ctx, st, "test.db", nh, ports[0][:8]); note != "; groups from test.db" {
		t.Fatalf("nft note %q", note)
	}
	if nh.Provenance == nil || !slices.Equal(nh.Provenance.Groups[ports[0]], []string{group}) {
		t.Errorf("nft provenance %+v, want port %s in group %s", nh.Provenance, ports[0], group)
	}
	if note := NFTProvenance(ctx, st, "test.db", nh, "ffffffff"); note != "; groups unknown: port ffffffff is not in test.db" {
		t.Errorf("unknown port: nft note %q", note)
	}
}

// racing fails the first fail runs of each iptables-save tool as
// iptables-nft-save does when another process commits while it reads.
type racing struct {
	*kernel
	fail  int
	saves map[string]int
}

func (r *racing) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if strings.HasSuffix(name, "tables-nft-save") {
		r.saves[name]++
		if r.saves[name] <= r.fail {
			return nil, &dataplane.CommandError{Cmd: name, Err: fmt.Errorf("exit status 1"), Stderr: "Set with index 0 not found\n"}
		}
	}
	return r.kernel.Run(ctx, stdin, name, args...)
}

// A live read that races another process's commit is read again
// (iptables.RetrySave), for both families.
func TestLoadLiveRetriesRacingSave(t *testing.T) {
	ctx := context.Background()
	k := &kernel{ipt: iptablestest.New(), out: map[string]string{}}
	for _, tool := range []string{"iptables-nft-restore", "ip6tables-nft-restore"} {
		if _, err := k.Run(ctx, []byte("*filter\n:neutron-openvswi-sg-chain - [0:0]\n-A FORWARD -j neutron-openvswi-sg-chain\nCOMMIT\n"), tool); err != nil {
			t.Fatal(err)
		}
	}
	r := &racing{kernel: k, fail: 2, saves: map[string]int{}}
	s := Source{Exec: r}
	h, where, err := s.Load(ctx, nil)
	if err != nil {
		t.Fatalf("Load: %v (ran %q)", err, k.runs)
	}
	if h.IPv4 == nil || h.IPv6 == nil || strings.Contains(where, "no IPv6 rules") {
		t.Errorf("where %q; IPv4 %v, IPv6 %v", where, h.IPv4 != nil, h.IPv6 != nil)
	}
	if r.saves["iptables-nft-save"] != 3 || r.saves["ip6tables-nft-save"] != 3 {
		t.Errorf("saves %v, want 3 of each (two failed, one read)", r.saves)
	}
}
