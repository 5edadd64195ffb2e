package watchbench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/store/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// A small run on two PostgreSQL replicas: every change reaches every
// interested agent, hosts no change concerns receive (almost) nothing,
// restarting every agent costs one snapshot each, and killing a replica
// makes its agents resume on the other without a snapshot.
func TestRunReplicas(t *testing.T) {
	db := pgtest.Start(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Agents: 12, Replicas: 2, DB: db, Ports: 2, Groups: 4, Changes: 9, Timeout: 20 * time.Second, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.Missed != 0 {
		t.Errorf("%d (change, host) pairs missed", res.Missed)
	}
	if res.InterestedHostsPerChange != 3 {
		t.Errorf("interested hosts per change %.2f, want 3 (12 hosts in 4 groups)", res.InterestedHostsPerChange)
	}
	if res.BytesPerChangeInterested <= 0 {
		t.Errorf("interested hosts received %.1f bytes per change", res.BytesPerChangeInterested)
	}
	// A host no change concerns gets at most bookmarks, never a delta.
	if res.BytesPerChangeUninterested*5 > res.BytesPerChangeInterested {
		t.Errorf("uninterested hosts got %.1f bytes per change, interested ones %.1f", res.BytesPerChangeUninterested, res.BytesPerChangeInterested)
	}
	if res.StalledChangesMissed != 0 || res.StalledSnapshots != 0 || res.StalledCaughtUpMs <= 0 {
		t.Errorf("a stalled reader: the others missed %d changes; it caught up in %.1f ms with %d snapshots (want none missed, no snapshot)",
			res.StalledChangesMissed, res.StalledCaughtUpMs, res.StalledSnapshots)
	}
	if res.RestartSnapshots != 12 {
		t.Errorf("restarting 12 agents took %d snapshots, want 12", res.RestartSnapshots)
	}
	if res.CompactResyncs != 1 {
		t.Errorf("a host back past the compacted log made %d resyncs, want 1", res.CompactResyncs)
	}
	if res.ConcurrentWrites != 40 || res.LostHosts != 0 {
		t.Errorf("%d concurrent writes, %d hosts lost a revision; want 40 and none", res.ConcurrentWrites, res.LostHosts)
	}
	if res.KillReplicaSnapshots != 0 || res.KillReplicaResumes < 1 {
		t.Errorf("killing a replica: %d resumes, %d snapshots; want resumes and no snapshot", res.KillReplicaResumes, res.KillReplicaSnapshots)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{Agents: -1}, {Agents: 4, Groups: 1}, {Agents: 4, Groups: 8}, {Agents: 2, Ports: 40000}} {
		if err := c.defaults(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
