package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// TestHostPart: asked for every port of a host, HostPart reads what
// HostSnapshot does; asked for another host's ports, none; asked for a
// network, group or members, those alone.
func TestHostPart(t *testing.T) {
	onBoth(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		buildFixture(t, s)
		err := s.Read(ctx, func(tx *Tx) error {
			for _, host := range []string{"h1", "h2"} {
				full, err := tx.HostSnapshot(ctx, host)
				if err != nil {
					return err
				}
				var ids []string
				for _, p := range full.Ports {
					ids = append(ids, p.ID)
				}
				part, err := tx.HostPart(ctx, host, HostPart{Ports: ids})
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(part, full) {
					t.Errorf("%s: HostPart of all its ports:\n%+v\nHostSnapshot:\n%+v", host, part, full)
				}
				other, err := tx.HostPart(ctx, "elsewhere", HostPart{Ports: ids})
				if err != nil {
					return err
				}
				if len(other.Ports) != 0 || len(other.Groups) != 0 {
					t.Errorf("%s's ports read for another host: %+v", host, other)
				}
				for g := range full.Groups {
					only, err := tx.HostPart(ctx, host, HostPart{Groups: []string{g}, Members: []string{g}})
					if err != nil {
						return err
					}
					if len(only.Ports) != 0 || len(only.Groups) != 1 || !reflect.DeepEqual(only.Groups[g], full.Groups[g]) || only.Members[g] == nil {
						t.Errorf("group %s alone: %+v", g, only)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestCompactChanges: compaction deletes the old changes but the newest,
// and OldestRevision says where the log starts; a status recorded for an
// agent adds nothing to it.
func TestCompactChanges(t *testing.T) {
	onBoth(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f := buildFixture(t, s)
		var latest, oldest int64
		read := func() {
			t.Helper()
			if err := s.Read(ctx, func(tx *Tx) error {
				var err error
				if latest, err = tx.LatestRevision(ctx); err != nil {
					return err
				}
				oldest, err = tx.OldestRevision(ctx)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		read()
		before := latest
		if oldest != 1 || latest < 2 {
			t.Fatalf("log [%d, %d] before compaction", oldest, latest)
		}
		var n int64
		if err := s.Write(ctx, func(tx *Tx) error {
			var err error
			n, err = tx.CompactChanges(ctx, time.Now().Add(time.Hour))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		read()
		if n != before-1 || oldest != before || latest != before {
			t.Errorf("compacted %d, log [%d, %d]; want %d compacted, [%d, %d]", n, oldest, latest, before-1, before, before)
		}
		if err := s.Write(ctx, func(tx *Tx) error {
			p, err := tx.PortForStatus(ctx, f.ports[0].ID)
			if err != nil {
				return err
			}
			return tx.RecordAgentStatus(ctx, p, "ERROR", "why")
		}); err != nil {
			t.Fatal(err)
		}
		read()
		if latest != before {
			t.Errorf("an agent's status added to the change log: %d -> %d", before, latest)
		}
		var hosts map[string]string
		if err := s.Read(ctx, func(tx *Tx) error {
			var err error
			hosts, err = tx.PortHosts(ctx, []string{f.ports[0].ID, "nope"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, ok := hosts[f.ports[0].ID]; !ok || len(hosts) != 1 {
			t.Errorf("PortHosts: %v", hosts)
		}
	})
}
