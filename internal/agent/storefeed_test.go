package agent

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane/conntrack"
	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// TestBadRowIsolatedThroughTheStore: a port row written around the API
// (a MAC no parser takes) no longer stops its host: the agent, reading
// the real store, filters the other port, records the bad one ERROR with
// the reason in the store, and ACTIVE again once the row is fixed.
func TestBadRowIsolatedThroughTheStore(t *testing.T) {
	ctx := context.Background()
	st, raw, ids := twoPortStore(t)
	setMAC := func(mac string) {
		t.Helper()
		if _, err := raw.Exec(`UPDATE ports SET mac_address = ? WHERE id = ?`, mac, ids[1]); err != nil {
			t.Fatal(err)
		}
	}
	status := func(id string) (string, string) {
		t.Helper()
		var p *neutron.Port
		if err := st.Read(ctx, func(tx *store.Tx) error {
			var err error
			p, err = tx.GetPort(ctx, id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return p.Status, p.StatusReason
	}
	ev := &events{}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a := New(cfg, StoreFeed{Store: st, Host: "h1"}, &fakeRules{ev: ev}, &fakeSets{ev: ev},
		&fakeWiring{ev: ev, taps: map[string]bool{ids[0]: true, ids[1]: true}}, &conntrack.Recorder{})

	setMAC("fa:16:3e:zz:00:01")
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("one bad row failed the host's sync: %v", err)
	}
	if s, r := status(ids[0]); s != neutron.PortStatusActive || r != "" {
		t.Errorf("good port: %s %q", s, r)
	}
	if s, r := status(ids[1]); s != neutron.PortStatusError || r != `bad MAC "fa:16:3e:zz:00:01"` {
		t.Errorf("bad port: %s %q", s, r)
	}
	if _, wired := a.wired[ids[1]]; wired || a.attached[ids[1]] || !a.attached[ids[0]] {
		t.Errorf("wired %v, attached %v: want only the good port", a.wired, a.attached)
	}
	setMAC("fa:16:3e:00:00:01")
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s, r := status(ids[1]); s != neutron.PortStatusActive || r != "" {
		t.Errorf("fixed port: %s %q", s, r)
	}
}

// TestUnreadableRowIsolatedThroughTheStore: a port row that does not even
// read (its binding:profile is not JSON, written around the API) no
// longer fails the host's snapshot: the agent filters the other port,
// rejects the bad one (ERROR with the reason, unwired, its tap dropped),
// and takes it back once the row is fixed.
func TestUnreadableRowIsolatedThroughTheStore(t *testing.T) {
	ctx := context.Background()
	st, raw, ids := twoPortStore(t)
	setProfile := func(profile string) {
		t.Helper()
		if _, err := raw.Exec(`UPDATE ports SET profile = ? WHERE id = ?`, profile, ids[1]); err != nil {
			t.Fatal(err)
		}
	}
	status := func(id string) (string, string) {
		t.Helper()
		var s, r string
		if err := raw.QueryRow(`SELECT status, status_reason FROM ports WHERE id = ?`, id).Scan(&s, &r); err != nil {
			t.Fatal(err)
		}
		return s, r
	}
	ev := &events{}
	rules := &fakeRules{ev: ev}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a := New(cfg, StoreFeed{Store: st, Host: "h1"}, rules, &fakeSets{ev: ev},
		&fakeWiring{ev: ev, taps: map[string]bool{ids[0]: true, ids[1]: true}}, &conntrack.Recorder{})

	setProfile(`{"migrating_to": `)
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("one unreadable row failed the host's sync: %v", err)
	}
	if s, r := status(ids[0]); s != neutron.PortStatusActive || r != "" {
		t.Errorf("good port: %s %q", s, r)
	}
	wantReason := "stored port does not read: binding:profile is not a JSON object (unexpected end of JSON input)"
	if s, r := status(ids[1]); s != neutron.PortStatusError || r != wantReason {
		t.Errorf("bad port: %s %q, want ERROR %q", s, r, wantReason)
	}
	if _, wired := a.wired[ids[1]]; wired || a.attached[ids[1]] || !a.attached[ids[0]] {
		t.Errorf("wired %v, attached %v: want only the good port", a.wired, a.attached)
	}
	if !rules.applied.IsRejected(ids[1]) || rules.applied.IsRejected(ids[0]) {
		t.Errorf("rejected ports %v: want only the bad one", rules.applied.Rejected)
	}
	setProfile(`{}`)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s, r := status(ids[1]); s != neutron.PortStatusActive || r != "" {
		t.Errorf("fixed port: %s %q", s, r)
	}
	if rules.applied.IsRejected(ids[1]) || !a.attached[ids[1]] {
		t.Errorf("fixed port still rejected (%v) or not attached (%v)", rules.applied.Rejected, a.attached)
	}
}

// twoPortStore is a SQLite store with two ports on host h1 in one group,
// and a connection to its file around the store, to damage their rows.
func twoPortStore(t *testing.T) (*store.Store, *sql.DB, []string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "moat.db")
	st, err := store.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ids []string
	err = st.Write(ctx, func(tx *store.Tx) error {
		n := &neutron.Network{ProjectID: "p1", Name: "n", AdminStateUp: true, Status: "ACTIVE", MTU: 1450,
			PortSecurityEnabled: true, NetworkType: neutron.NetTypeLocal}
		if err := tx.CreateNetwork(ctx, n); err != nil {
			return err
		}
		sn := &neutron.Subnet{ProjectID: "p1", NetworkID: n.ID, Name: "s", IPVersion: 4,
			CIDR: netip.MustParsePrefix("10.0.0.0/24")}
		if err := tx.CreateSubnet(ctx, sn); err != nil {
			return err
		}
		g := &neutron.SecurityGroup{ProjectID: "p1", Name: "g", Stateful: true}
		if err := tx.CreateSecurityGroup(ctx, g, neutron.DefaultRules("", "p1", false), false); err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			p := &neutron.Port{ProjectID: "p1", NetworkID: n.ID, Name: fmt.Sprint("p", i),
				MACAddress: fmt.Sprintf("fa:16:3e:00:00:%02x", i), AdminStateUp: true, Status: neutron.PortStatusDown,
				PortSecurityEnabled: true, HostID: "h1", VNICType: "normal", VIFType: neutron.VIFTypeOVS,
				FixedIPs:            []neutron.FixedIP{{SubnetID: sn.ID, IPAddress: netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", 10+i))}},
				AllowedAddressPairs: []neutron.AddressPair{}, SecurityGroups: []string{g.ID}}
			if err := tx.CreatePort(ctx, p); err != nil {
				return err
			}
			ids = append(ids, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return st, raw, ids
}
