package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/moat-sg/moat/internal/neutron"
)

// TestPortStatusReason: an agent's ERROR and its reason are stored with
// the port, bump its revision, show in the host snapshot, and go when the
// port is ACTIVE again.
func TestPortStatusReason(t *testing.T) { onBoth(t, testPortStatusReason) }

func testPortStatusReason(t *testing.T, s *Store) {
	ctx := context.Background()
	f := buildFixture(t, s)
	id := f.ports[0].ID
	read := func() *neutron.Port {
		t.Helper()
		var p *neutron.Port
		if err := s.Read(ctx, func(tx *Tx) error {
			var err error
			p, err = tx.GetPort(ctx, id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	report := func(status, reason string) {
		t.Helper()
		if err := s.Write(ctx, func(tx *Tx) error {
			p, err := tx.GetPort(ctx, id)
			if err != nil {
				return err
			}
			return tx.ReportPortStatus(ctx, p, status, reason)
		}); err != nil {
			t.Fatal(err)
		}
	}
	before := read()
	if before.StatusReason != "" {
		t.Fatalf("new port has reason %q", before.StatusReason)
	}
	const why = `bad MAC "fa:16:3e:zz:00:01"`
	report(neutron.PortStatusError, why)
	p := read()
	if p.Status != neutron.PortStatusError || p.StatusReason != why || p.RevisionNumber != before.RevisionNumber+1 {
		t.Fatalf("after ERROR: status %q reason %q revision %d (was %d)", p.Status, p.StatusReason, p.RevisionNumber, before.RevisionNumber)
	}
	report(neutron.PortStatusError, why) // the same again changes nothing
	if again := read(); again.RevisionNumber != p.RevisionNumber {
		t.Errorf("repeated report bumped the revision to %d", again.RevisionNumber)
	}
	var snap *HostSnapshot
	if err := s.Read(ctx, func(tx *Tx) error {
		var err error
		snap, err = tx.HostSnapshot(ctx, "h1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sp := range snap.Ports {
		if sp.ID == id {
			found = sp.Status == neutron.PortStatusError && sp.StatusReason == why
		}
	}
	if !found {
		t.Errorf("host snapshot does not carry the port's ERROR and reason")
	}
	report(neutron.PortStatusActive, "")
	if p := read(); p.Status != neutron.PortStatusActive || p.StatusReason != "" {
		t.Errorf("after ACTIVE: status %q reason %q", p.Status, p.StatusReason)
	}
}

// TestMigrationAddsStatusReason: a database of schema version 2 with a
// port in it opens with this moat; the port has no reason.
func TestMigrationAddsStatusReason(t *testing.T) {
	path := "sqlite://" + filepath.Join(t.TempDir(), "moat.db")
	all := migrations
	t.Cleanup(func() { migrations = all })
	migrations = all[:2]
	old := openURL(t, path)
	f := buildFixture(t, old)
	old.Close()
	migrations = all
	s := openURL(t, path)
	var p *neutron.Port
	if err := s.Read(context.Background(), func(tx *Tx) error {
		var err error
		p, err = tx.GetPort(context.Background(), f.ports[0].ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if p == nil || p.StatusReason != "" || p.Status != neutron.PortStatusDown {
		t.Fatalf("port after the migration: %+v", p)
	}
}
