package watch

import (
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/store"
)

// TestChainSince: a stream walks the chain from its own position; one
// older than the chain holds, or ahead of it, is told to read the log.
func TestChainSince(t *testing.T) {
	h := &hub{valid: true, from: 10, latest: 14, chain: []entry{
		{Change: store.Change{Revision: 11, Kind: store.KindPort, ObjectID: "p1", Op: store.OpUpdate}, portHost: "h1", found: true},
		{Change: store.Change{Revision: 12, Kind: store.KindPort, ObjectID: "p2", Op: store.OpUpdate}}, // gone at look-up
		{Change: store.Change{Revision: 13, Kind: store.KindSecurityGroupRule, ObjectID: "r1", Op: store.OpCreate}, ruleGroup: "g", found: true},
		{Change: store.Change{Revision: 14, Kind: store.KindSubnet, ObjectID: "s", Op: store.OpCreate}},
	}}
	revs := func(cs []store.Change) []int64 {
		var out []int64
		for _, c := range cs {
			out = append(out, c.Revision)
		}
		return out
	}
	for _, tc := range []struct {
		rev, max int
		ok       bool
		want     []int64
	}{
		{9, 10, false, nil},  // older than the chain: the log
		{15, 10, false, nil}, // ahead of it (a snapshot read after the hub's last look)
		{10, 10, true, []int64{11, 12, 13, 14}},
		{12, 10, true, []int64{13, 14}},
		{14, 10, true, nil},
		{10, 2, true, []int64{11, 12}},
	} {
		cs, look, _, ok := h.since(int64(tc.rev), tc.max)
		if ok != tc.ok || !slices.Equal(revs(cs), tc.want) {
			t.Errorf("since(%d, %d) = %v, %v; want %v, %v", tc.rev, tc.max, revs(cs), ok, tc.want, tc.ok)
		}
		if tc.rev == 10 && tc.max == 10 {
			if host, ok := look.PortHost["p1"]; !ok || host != "h1" {
				t.Errorf("p1's host: %q %v", host, ok)
			}
			if _, ok := look.PortHost["p2"]; ok {
				t.Errorf("a port gone at look-up has a host")
			}
			if look.RuleGroup["r1"] != "g" {
				t.Errorf("r1's group: %q", look.RuleGroup["r1"])
			}
		}
	}
	if _, _, _, ok := (&hub{}).since(0, 10); ok {
		t.Errorf("a hub that has not read the log yet answered")
	}
}
