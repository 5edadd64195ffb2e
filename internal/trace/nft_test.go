package trace

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestNFTTraceGolden traces packets through moat's nftables tables as the
// kernel lists them (testdata/nft/ipip_remote_group.json: the rendering
// of sample.json's ipip_remote_group loaded into nftables and listed with
// nft -j list ruleset) and compares the text output with the goldens
// (go test -update rewrites them).
func TestNFTTraceGolden(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "nft", "ipip_remote_group.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := LoadNFT(f)
	if err != nil {
		t.Fatal(err)
	}
	const a = "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d"
	cases := []struct {
		name, verdict, kind string
		q                   Query
	}{
		{"ipip-allowed", VerdictAccept, OriginSGRule, Query{Port: a, Direction: Ingress, Protocol: "4", Src: "10.0.0.1"}},
		{"ssh-from-member", VerdictAccept, OriginSGRule, Query{Port: a[:8], Direction: Ingress, Protocol: "tcp", DstPort: "22", Src: "192.168.1.13"}},
		{"ssh-from-stranger", VerdictDrop, OriginDefaultDrop, Query{Port: a, Direction: Ingress, Protocol: "tcp", DstPort: "22", Src: "203.0.113.9"}},
		{"spoofed-source", VerdictDrop, OriginAntiSpoofing, Query{Tap: "tapc0a350e0-43", Direction: Egress, Protocol: "udp", DstPort: "53", Src: "192.168.1.99", Dst: "8.8.8.8"}},
		{"established", VerdictAccept, OriginEstablished, Query{Port: a, Direction: Ingress, Protocol: "udp", DstPort: "9", Src: "203.0.113.9", State: "established"}},
		{"dhcp-server-from-vm", VerdictDrop, OriginDHCPProtection, Query{Port: a, Direction: Egress, Protocol: "udp", SrcPort: "67", DstPort: "68", Dst: "255.255.255.255"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := h.Trace(c.q)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != c.verdict || res.DecidedBy == nil || res.DecidedBy.OriginKind != c.kind {
				t.Errorf("verdict %s by %+v, want %s by %s", res.Verdict, res.DecidedBy, c.verdict, c.kind)
			}
			var b bytes.Buffer
			if err := WriteText(&b, res); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "nft", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("output differs from %s:\n%s", path, b.String())
			}
		})
	}
}

func TestNFTTraceErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"nftables": []}`, "no moat tables"},
		{`not json`, "read nft -j output"},
		{`{"nftables": [{"map": {"family": "ip", "table": "moat", "name": "m", "type": "ifname", "map": "verdict", "elem": [1]}}]}`, "map element"},
	} {
		_, err := LoadNFT(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadNFT(%s) = %v, want an error with %q", c.in, err, c.want)
		}
	}
}

func TestNFTExplain(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "nft", "ipip_remote_group.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := LoadNFT(f)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := h.Explain("c0a350e0", "")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteExplainText(&b, ex); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "nft", "explain.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("explain differs from %s:\n%s", path, b.String())
	}
	if !ex.Counters {
		t.Errorf("the rules carry counters, the explanation says not")
	}
	kinds := map[string]bool{}
	for _, r := range ex.Rows {
		kinds[r.Kind] = true
	}
	for _, k := range []string{OriginDispatch, OriginCTZone, OriginSGRule, OriginAntiSpoofing, OriginToDefaultDrop} {
		if !kinds[k] {
			t.Errorf("no %s row in:\n%s", k, b.String())
		}
	}
	if _, err := h.Explain("ffffffff", ""); err == nil {
		t.Errorf("explain of an unknown port succeeded")
	}
}

// FuzzLoadNFT: whatever nft -j output (or a file claiming to be one)
// holds, loading, tracing and explaining never panic.
// The seeds are small hosts (testdata/fuzz/FuzzLoadNFT): a listing of a
// real host is too big to mutate fast.
func FuzzLoadNFT(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := LoadNFT(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, q := range []Query{
			{Port: "c0a350e0", Direction: Ingress, Protocol: "tcp", DstPort: "22", Src: "192.168.1.13"},
			{Tap: "tapc0a350e0-43", Direction: Egress, Protocol: "udp", SrcPort: "68", DstPort: "67", Src: "0.0.0.0", Dst: "255.255.255.255"},
			{Port: "c0a350e0", Direction: Ingress, Protocol: "ipv6-icmp", ICMPType: "135", Src: "fe80::1"},
			{Port: "c0a350e0", Direction: Egress, Protocol: "4", Dst: "10.0.0.1", State: "established"},
		} {
			_, _ = h.Trace(q)
		}
		_, _ = h.Explain("c0a350e0", "")
	})
}
