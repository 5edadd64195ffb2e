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
		snap, err := readSnapshot(s, host)
		if err != nil {
			t.Fatal(err)
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

// TestHostSnapshotIsolatesBadDependencies: a network, group or rule row
// that does not read (SQLite keeps text in a number column) rejects the
// host's ports that depend on it, with the reason, and no other port.
func TestHostSnapshotIsolatesBadDependencies(t *testing.T) {
	// Ports of the fixture on h1: 0 (net 0, groups 0 and 1), 1 (net 2,
	// group 1), 2 (net 0, no group), 4 (net 2, group 0).
	type tc struct {
		name    string
		corrupt func(f *fixture) (string, []any)
		want    func(f *fixture, ruleID string) map[string]string
	}
	for _, tt := range []tc{
		{"network", func(f *fixture) (string, []any) {
			return `UPDATE networks SET mtu = 'big' WHERE id = ?`, []any{f.nets[2].ID}
		}, func(f *fixture, _ string) map[string]string {
			why := "its network " + f.nets[2].ID + ` does not read: mtu holds "big", not a number`
			return map[string]string{f.ports[1].ID: why, f.ports[4].ID: why}
		}},
		{"group", func(f *fixture) (string, []any) {
			return `UPDATE security_groups SET stateful = 'maybe' WHERE id = ?`, []any{f.groups[1].ID}
		}, func(f *fixture, _ string) map[string]string {
			why := "its security group " + f.groups[1].ID + ` does not read: stateful holds "maybe", not a number`
			return map[string]string{f.ports[0].ID: why, f.ports[1].ID: why}
		}},
		{"rule", func(f *fixture) (string, []any) {
			return `UPDATE security_group_rules SET port_range_min = 'x' WHERE security_group_id = ? AND protocol = 'tcp'`, []any{f.groups[0].ID}
		}, func(f *fixture, ruleID string) map[string]string {
			why := "its security group " + f.groups[0].ID + " does not read: rule " + ruleID + `: port_range_min holds "x", not a number`
			return map[string]string{f.ports[0].ID: why, f.ports[4].ID: why}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			f := buildFixture(t, s)
			var ruleID string
			if err := s.reader.QueryRow(`SELECT id FROM security_group_rules WHERE security_group_id = ? AND protocol = 'tcp'`,
				f.groups[0].ID).Scan(&ruleID); err != nil {
				t.Fatal(err)
			}
			q, args := tt.corrupt(f)
			if _, err := s.writer.Exec(q, args...); err != nil {
				t.Fatal(err)
			}
			snap, err := readSnapshot(s, "h1")
			if err != nil {
				t.Fatalf("one bad %s failed the snapshot: %v", tt.name, err)
			}
			if want := tt.want(f, ruleID); !reflect.DeepEqual(snap.PortErrors, want) {
				t.Errorf("port errors:\n got %q\nwant %q", snap.PortErrors, want)
			}
			if len(snap.Ports) != 4 {
				t.Errorf("%d ports on h1, want 4", len(snap.Ports))
			}
		})
	}
}

// readSnapshot reads host's snapshot in a transaction of its own.
func readSnapshot(s *Store, host string) (*HostSnapshot, error) {
	var snap *HostSnapshot
	err := s.Read(context.Background(), func(tx *Tx) error {
		var err error
		snap, err = tx.HostSnapshot(context.Background(), host)
		return err
	})
	return snap, err
}
