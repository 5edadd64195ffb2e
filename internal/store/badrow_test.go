package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// TestHostSnapshotIsolatesBadRows: a port row whose stored values do not
// read (binding:profile that is not JSON; in SQLite, text in a number
// column), written around the API, no longer fails its host's snapshot:
// the snapshot has every port, the bad ones listed with the reason, and
// the good ones exactly as before.
func TestHostSnapshotIsolatesBadRows(t *testing.T) { onBoth(t, testHostSnapshotIsolatesBadRows) }

func testHostSnapshotIsolatesBadRows(t *testing.T, s *Store) {
	ctx := context.Background()
	f := buildFixture(t, s)
	host := f.ports[0].HostID
	snapshot := func() *HostSnapshot {
		t.Helper()
		var snap *HostSnapshot
		if err := s.Read(ctx, func(tx *Tx) error {
			var err error
			snap, err = tx.HostSnapshot(ctx, host)
			return err
		}); err != nil {
			t.Fatalf("snapshot of %s: %v", host, err)
		}
		return snap
	}
	before := snapshot()
	var onHost []string
	for _, p := range before.Ports {
		onHost = append(onHost, p.ID)
	}
	if len(onHost) < 3 || len(before.PortErrors) != 0 {
		t.Fatalf("fixture: ports %v on %s, errors %v", onHost, host, before.PortErrors)
	}
	corrupt := map[string]string{
		onHost[0]: `UPDATE ports SET profile = '{"migrating_to": ' WHERE id = ?`,
	}
	want := map[string]string{
		onHost[0]: "stored port does not read: binding:profile is not a JSON object (unexpected end of JSON input)",
	}
	if s.d.name() == "sqlite" { // PostgreSQL keeps a number column numbers
		corrupt[onHost[2]] = `UPDATE ports SET admin_state_up = 'yes', profile = '[1]' WHERE id = ?`
		want[onHost[2]] = `stored port does not read: admin_state_up holds "yes", not a number; ` +
			"binding:profile is not a JSON object (json: cannot unmarshal array into Go value of type map[string]interface {})"
	}
	for id, q := range corrupt {
		if _, err := s.writer.Exec(s.d.rebind(q), id); err != nil {
			t.Fatal(err)
		}
	}
	after := snapshot()
	if !reflect.DeepEqual(after.PortErrors, want) {
		t.Errorf("port errors:\n got %q\nwant %q", after.PortErrors, want)
	}
	if len(after.Ports) != len(before.Ports) {
		t.Fatalf("%d ports, want %d", len(after.Ports), len(before.Ports))
	}
	for i, p := range after.Ports {
		if _, bad := want[p.ID]; bad {
			if p.ID != before.Ports[i].ID || p.MACAddress != before.Ports[i].MACAddress {
				t.Errorf("bad port %s: what could be read changed: %+v", p.ID, p)
			}
			continue
		}
		if !reflect.DeepEqual(p, before.Ports[i]) {
			t.Errorf("good port %s changed:\n%+v\n%+v", p.ID, p, before.Ports[i])
		}
	}
	if !reflect.DeepEqual(after.Groups, before.Groups) || !reflect.DeepEqual(after.Members, before.Members) {
		t.Error("groups or members changed")
	}
	// The API's reads stay strict: a port that does not read is an error
	// there, not a port with made-up values.
	err := s.Read(ctx, func(tx *Tx) error { _, err := tx.GetPort(ctx, onHost[0]); return err })
	if err == nil || !strings.Contains(err.Error(), "binding:profile is not a JSON object") {
		t.Errorf("GetPort of the bad port: %v", err)
	}
}
