package wiring

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseBridgeMappings(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []BridgeMapping
		err  string
	}{
		{in: "", want: nil},
		{in: "physnet1:br-eth1", want: []BridgeMapping{{"physnet1", "br-eth1"}}},
		{in: " physnet2:br-eth2 , physnet1:br-eth1", want: []BridgeMapping{{"physnet1", "br-eth1"}, {"physnet2", "br-eth2"}}},
		{in: "physnet1", err: "want PHYSNET:BRIDGE"},
		{in: "physnet1:", err: "want PHYSNET:BRIDGE"},
		{in: ":br-eth1", err: "want PHYSNET:BRIDGE"},
		{in: "physnet1:br-int", err: "integration bridge"},
		{in: "physnet1:br-eth1,physnet1:br-eth2", err: "physnet1 mapped twice"},
		{in: "physnet1:br-eth1,physnet2:br-eth1", err: "br-eth1 mapped twice"},
		{in: "physnet1:br-$(reboot)", err: "want letters"},
		{in: "physnet1:br-0123456789abcdef", err: "longer than 15"},
		{in: `phys"net:br-eth1`, err: "does not allow"},
	} {
		got, err := ParseBridgeMappings(c.in, "br-int")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseBridgeMappings(%q) = %v, %v; want an error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseBridgeMappings(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

// The flows of two physical networks and five local networks, against
// testdata/provider-flows.golden (MOAT_UPDATE_GOLDEN=1 rewrites it).
func TestProviderFlows(t *testing.T) {
	mappings := []BridgeMapping{{"physnet1", "br-eth1"}, {"physnet2", "br-physnet-long"}}
	segs := []Segment{
		{NetworkID: "n-vlan102", LocalVLAN: 1, NetworkType: "vlan", Physnet: "physnet1", SegmentationID: 102},
		{NetworkID: "n-flat", LocalVLAN: 2, NetworkType: "flat", Physnet: "physnet2"},
		{NetworkID: "n-vxlan", LocalVLAN: 3, NetworkType: "vxlan", SegmentationID: 77},
		{NetworkID: "n-unmapped", LocalVLAN: 4, NetworkType: "vlan", Physnet: "physnet9", SegmentationID: 200},
		{NetworkID: "n-vlan103", LocalVLAN: 5, NetworkType: "vlan", Physnet: "physnet1", SegmentationID: 103},
		{NetworkID: "n-dead", LocalVLAN: DeadVLAN, NetworkType: "vlan", Physnet: "physnet1", SegmentationID: 104},
	}
	flows, unmapped := ProviderFlows("br-int", mappings, segs)
	var b strings.Builder
	for _, br := range []string{"br-eth1", "br-int", "br-physnet-long"} {
		b.WriteString("# " + br + "\n")
		for _, f := range flows[br] {
			b.WriteString(f + "\n")
		}
	}
	if len(flows) != 3 {
		t.Errorf("flows for %d bridges, want 3: %v", len(flows), flows)
	}
	var ids []string
	for _, s := range unmapped {
		ids = append(ids, s.NetworkID)
	}
	if want := []string{"n-unmapped", "n-dead"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("unmapped = %v, want %v", ids, want)
	}
	golden := filepath.Join("testdata", "provider-flows.golden")
	if os.Getenv("MOAT_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("flows:\n%s\nwant (%s):\n%s", b.String(), golden, want)
	}
}
