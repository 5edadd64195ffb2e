package watch_test

import (
	"slices"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/watch"
)

// TestAddressGroupChangeReachesOnlyItsHosts: adding an address to an
// address group reaches the host whose port's group has a rule naming it,
// as the address group alone (no port, group or members), and wakes no
// other host's stream.
func TestAddressGroupChangeReachesOnlyItsHosts(t *testing.T) {
	e := newEnv(t, apitest.Config{Watch: watch.Config{Bookmark: 100 * time.Millisecond}})
	ag := e.call("POST", "address-groups", map[string]any{"address_group": map[string]any{
		"name": "office", "addresses": []string{"192.0.2.0/24"}}}, 201)["address_group"].(map[string]any)["id"].(string)
	web, other := e.group("web"), e.group("other")
	e.rule(web, map[string]any{"protocol": "tcp", "remote_address_group_id": ag})
	e.port("h1", "10.0.0.11", web)
	e.port("h2", "10.0.0.21", other)
	s1, s2 := e.watch("h1", 0, nil), e.watch("h2", 0, nil)
	typ, _, snap := s1.complete()
	if typ != hostview.EventSnapshot || len(snap.AddressGroups) != 1 || snap.AddressGroups[0].ID != ag ||
		snap.AddressGroups[0].Name != "office" || !slices.Equal(snap.AddressGroups[0].IPv4, []string{"192.0.2.0/24"}) {
		t.Fatalf("h1's snapshot: %s %+v, want the address group", typ, snap.AddressGroups)
	}
	if _, _, snap := s2.complete(); len(snap.AddressGroups) != 0 {
		t.Fatalf("h2's snapshot holds address groups %+v", snap.AddressGroups)
	}
	reads := func(h string) int64 { return e.srv.Watch.Host(h).Reads }
	before2 := reads("h2")
	e.call("PUT", "address-groups/"+ag+"/add_addresses", map[string]any{"addresses": []string{"2001:db8::/64"}}, 200)
	rev := e.latest()
	typ, r, d := s1.complete()
	want := hostview.Delta{AddressGroups: []hostview.AddressGroup{{ID: ag, Name: "office", IPv4: []string{"192.0.2.0/24"}, IPv6: []string{"2001:db8::/64"}}}}
	if typ != hostview.EventDelta || r != rev || len(d.AddressGroups) != 1 || !slices.Equal(d.AddressGroups[0].IPv6, want.AddressGroups[0].IPv6) ||
		len(d.Ports)+len(d.Groups)+len(d.Members)+len(d.Networks)+len(d.RemovedAddressGroups) != 0 {
		t.Errorf("h1 got %s at %d: %+v; want %+v at %d", typ, r, d, want, rev)
	}
	s2.quiet(300 * time.Millisecond)
	if reads("h2") != before2 {
		t.Errorf("h2's stream read its host (%d -> %d) for a change that does not concern it", before2, reads("h2"))
	}
}
