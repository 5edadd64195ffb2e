package packetbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/moat-sg/moat/internal/agent"
	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	moatbin.Remove()
	os.Exit(code)
}

func TestParsePingAvg(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want float64
		ok   bool
	}{
		{"--- x ping statistics ---\n20 packets transmitted, 20 received, 0% packet loss, time 1903ms\nrtt min/avg/max/mdev = 0.041/0.052/0.081/0.010 ms\n", 0.052, true},
		{"20 packets transmitted, 0 received, 100% packet loss\n", 0, false},
		{"rtt min/avg/max/mdev = garbage", 0, false},
	} {
		got, err := parsePingAvg(tc.out)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parsePingAvg(%q) = %v, %v; want %v, ok %v", tc.out, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseIPerf(t *testing.T) {
	got, err := parseIPerf([]byte(`{"end":{"sum_received":{"bits_per_second":512000000}}}`))
	if err != nil || got != 512 {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseIPerf([]byte(`{"error":"unable to connect to server"}`)); err == nil {
		t.Fatal("an iperf3 error read as a result")
	}
	if _, err := parseIPerf([]byte(`not json`)); err == nil {
		t.Fatal("garbage read as a result")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestValidBackend(t *testing.T) {
	for _, b := range append([]string{None, ConntrackOnly}, "iptables-legacy", "iptables-nft", "nftables") {
		if err := ValidBackend(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	if ValidBackend("ebtables") == nil {
		t.Error("ebtables accepted")
	}
}

// TestRunTiny runs the whole measurement on every backend at 10
// other ports, with one short run each, so that CI notices when the
// benchmark breaks. Run itself checks that each backend filters (no
// answer before the allowing rules) and forwards after them.
func TestRunTiny(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireOVS(t)
	testenv.RequireBrNetfilter(t)
	testenv.RequireTools(t, append(Tools, "ipset", "iptables-legacy", "iptables-nft", "ethtool")...)
	bin := moatbin.Build(t)
	backends := []string{None, ConntrackOnly}
	for _, b := range agent.Backends() {
		backends = append(backends, string(b))
	}
	res, err := Run(context.Background(), Options{Ports: []int{10}, Backends: backends, Repeat: 1, Seconds: 1, Moat: bin,
		Name: labName(), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(backends) {
		t.Fatalf("%d results, want %d", len(res), len(backends))
	}
	for _, r := range res {
		if r.MbitS <= 0 || r.RTTms <= 0 || len(r.Mbits) != 1 || len(r.RTTs) != 1 {
			t.Errorf("implausible %+v", r)
		}
		if (r.Backend == None || r.Backend == ConntrackOnly) != (r.ApplyMs == 0) {
			t.Errorf("%s: apply %v ms", r.Backend, r.ApplyMs)
		}
	}
}

func labName() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "mpkt" + hex.EncodeToString(b)
}
