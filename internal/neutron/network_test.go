package neutron

import (
	"testing"
)

func TestValidateSegment(t *testing.T) {
	cfg := DefaultNetworkConfig()
	cfg.VLANRanges = map[string][]Range{"physnet1": {{100, 199}}}
	cfg.FlatNetworks = []string{"public"}
	id := func(i int) *int { return &i }
	cases := []struct {
		req     SegmentRequest
		want    string
		message string
	}{
		{SegmentRequest{}, "vxlan", ""},
		{SegmentRequest{NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: id(102)}, "vlan", ""},
		{SegmentRequest{NetworkType: "vlan", PhysicalNetwork: "physnet9"}, "", "Invalid input for operation: physical_network 'physnet9' unknown for VLAN provider network."},
		{SegmentRequest{NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: id(4095)}, "", "Invalid input for operation: segmentation_id out of range (1 through 4094)."},
		{SegmentRequest{NetworkType: "flat", PhysicalNetwork: "public"}, "flat", ""},
		{SegmentRequest{NetworkType: "flat", PhysicalNetwork: "other"}, "", "Invalid input for operation: physical_network 'other' unknown for flat provider network."},
		{SegmentRequest{NetworkType: "vxlan", SegmentationID: id(MaxVNI + 1)}, "", "Invalid input for operation: segmentation_id out of range (1 through 16777215)."},
		{SegmentRequest{NetworkType: "local"}, "local", ""},
		{SegmentRequest{NetworkType: "gre"}, "", "Invalid input for operation: network_type value 'gre' not supported."},
	}
	for _, c := range cases {
		got, err := cfg.ValidateSegment(c.req)
		if c.message != "" {
			if err == nil || err.(*Error).Message != c.message {
				t.Errorf("%+v: got %v, want %s", c.req, err, c.message)
			}
			continue
		}
		if err != nil || got.NetworkType != c.want {
			t.Errorf("%+v: got %+v %v, want type %s", c.req, got, err, c.want)
		}
	}
}

func TestParseVLANRanges(t *testing.T) {
	got, err := ParseVLANRanges("physnet1:100:199, physnet2,physnet1:300:300")
	if err != nil || len(got["physnet1"]) != 2 || got["physnet1"][1] != (Range{300, 300}) || got["physnet2"] != nil {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{":1:2", "p:0:5", "p:5:4", "p:1:5000", "p:x"} {
		if _, err := ParseVLANRanges(bad); err == nil {
			t.Errorf("ParseVLANRanges(%q) accepted", bad)
		}
	}
}
