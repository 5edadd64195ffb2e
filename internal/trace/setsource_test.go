package trace

import "testing"

// TestSetSourceNamesAddressGroups: with the host state's provenance, a
// rule matching a set names the address group (and its name, quoted) or
// the remote group behind it, in nftables traces as in iptables ones.
func TestSetSourceNamesAddressGroups(t *testing.T) {
	prov := &Provenance{Sets: map[string]SetSource{
		"NIPv4a9e1c0de-7a11-4b2c-9d3e-": {AddressGroup: true, ID: "a9e1c0de-7a11-4b2c-9d3e-4f5a6b7c8d9e", Name: `office "north"`},
		"NIPv414c032e9-bc0a-4a7e-9f5b-": {ID: "14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b"},
	}}
	for _, tc := range []struct {
		comment, text string
		prov          *Provenance
		want          string
	}{
		{"sgr r1", "ip saddr @NIPv4a9e1c0de-7a11-4b2c-9d3e- tcp dport 22 counter return", prov,
			`security group rule r1 (@NIPv4a9e1c0de-7a11-4b2c-9d3e- is address group a9e1c0de-7a11-4b2c-9d3e-4f5a6b7c8d9e "office \"north\"")`},
		{"sgr r2", "ip saddr @NIPv414c032e9-bc0a-4a7e-9f5b- counter return", prov,
			"security group rule r2 (@NIPv414c032e9-bc0a-4a7e-9f5b- is security group 14c032e9-bc0a-4a7e-9f5b-2c3d4e5f6a7b)"},
		{"sgr r3", "ip saddr @NIPv4a9e1c0de-7a11-4b2c-9d3e- counter return", nil, "security group rule r3"},
		{"sgr r4", "ip saddr 10.0.0.0/8 counter return", prov, "security group rule r4"},
	} {
		if got := nftRuleOrigin(tc.comment, tc.text, "i-port", tc.prov).Text; got != tc.want {
			t.Errorf("nftRuleOrigin(%q, %q):\n got %s\nwant %s", tc.comment, tc.text, got, tc.want)
		}
	}
}
