package trace

import (
	"os"
	"path/filepath"
	"testing"
)

// What Rendering reads from Neutron's own dumps: the scenarios' options
// (render.py's enable_ipset and comment_iptables_rules).
func TestRendering(t *testing.T) {
	for _, c := range []struct {
		file string
		want Rendering
	}{
		{"testdata/neutron/basic/iptables-save.txt", Rendering{IPSets: false, Comments: true}},
		{"testdata/neutron/basic_nocomments/iptables-save.txt", Rendering{IPSets: false, Comments: false}},
		{"testdata/neutron/ipip_remote_group/iptables-save.txt", Rendering{IPSets: true, Comments: true}},
		// The same scenario on a host without ipsets: a rule per member.
		{"../firewall/testdata/neutron/golden/ipip_remote_group_noipset/00-prepared.iptables-save.txt", Rendering{IPSets: false, Comments: true}},
		{"../firewall/testdata/neutron/golden/basic_nocomments/00-prepared.ip6tables-save.txt", Rendering{IPSets: false, Comments: false}},
	} {
		b, err := os.ReadFile(filepath.FromSlash(c.file))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := ParseSaveString(string(b), false)
		if err != nil {
			t.Fatal(err)
		}
		if got := (&Host{IPv4: rs}).Rendering(); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.file, got, c.want)
		}
	}
	// Nothing to go by: the agents' defaults.
	if got := (&Host{}).Rendering(); got != (Rendering{Comments: true}) {
		t.Errorf("no rules: %+v", got)
	}
}
