package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane/wiring"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// fakeProvider records what the agent asks of the provider bridges.
type fakeProvider struct {
	ev  *events
	err error
}

func (p *fakeProvider) Sync(_ context.Context, segs []wiring.Segment, force bool) ([]wiring.Segment, error) {
	var b []string
	var unmapped []wiring.Segment
	for _, s := range segs {
		b = append(b, fmt.Sprintf("%s:%d->%s/%s/%d", s.NetworkID[:4], s.LocalVLAN, s.NetworkType, s.Physnet, s.SegmentationID))
		if s.Physnet == "" {
			unmapped = append(unmapped, s)
		}
	}
	p.ev.add("provider force=%v %s", force, strings.Join(b, " "))
	return unmapped, p.err
}

// The provider flows follow the networks of the host's ports: each sync
// hands them over with their local VLANs and segments (after the plugs,
// before the rules), a drift check forces a rewrite, and a failure is
// logged without holding up the port's rules.
func TestProviderFollowsTheNetworks(t *testing.T) {
	a, feed, _, _, _, ev := newFixture(t)
	prov := &fakeProvider{ev: ev}
	a.cfg.Provider = prov
	const netB = "0b000000-0000-4000-8000-000000000002"
	feed.update(func(s *store.HostSnapshot) {
		s.Networks[netA].NetworkType, s.Networks[netA].PhysicalNetwork, s.Networks[netA].SegmentationID = "vlan", ptr("physnet1"), ptr(102)
		s.Networks[netB] = &neutron.Network{ID: netB, MTU: 1450, NetworkType: "vxlan", SegmentationID: ptr(7)}
		b := port(portB, "192.168.1.13", sgWeb)
		b.NetworkID = netB
		s.Ports = append(s.Ports, b)
	})
	ctx := context.Background()
	if err := a.recover(ctx); err != nil {
		t.Fatal(err)
	}
	ev.take()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := ev.take()
	want := "provider force=false 0b00:2->vxlan//7 0e00:1->vlan/physnet1/102"
	i := indexOf(got, want)
	if i < 0 || indexOf(got, "plug bbbb tag=2 mtu=1450") > i || indexOf(got, "sets apply 1") < i {
		t.Fatalf("first sync:\n%s\nwant %q after the plugs, before the rules", strings.Join(got, "\n"), want)
	}
	// Port B leaves: its network's tag goes from the flows.
	feed.update(func(s *store.HostSnapshot) { s.Ports = s.Ports[:1] })
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ev.take(); indexOf(got, "provider force=false 0e00:1->vlan/physnet1/102") < 0 {
		t.Fatalf("after port B left:\n%s", strings.Join(got, "\n"))
	}
	// A drift check rewrites the same flows.
	a.syncProvider(ctx, nil, true)
	if got := ev.take(); strings.Join(got, "\n") != "provider force=true 0e00:1->vlan/physnet1/102" {
		t.Fatalf("drift check: %v", got)
	}
	// A provider failure does not stop the rules.
	prov.err = errors.New("ovs-ofctl: connection refused")
	feed.update(func(s *store.HostSnapshot) { s.Revision++ })
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("Sync with a failing provider: %v", err)
	}
}

func indexOf(list []string, s string) int {
	for i, l := range list {
		if l == s {
			return i
		}
	}
	return -1
}
