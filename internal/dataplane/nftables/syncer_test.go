package nftables

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

func fakeSyncer(k *fakeKernel) *Syncer { return newSyncer(k, nil) }

// TestSyncerNoChangeNoProcess: once applied, the same ruleset on an
// untouched namespace costs no read and no commit.
func TestSyncerNoChangeNoProcess(t *testing.T) {
	k := newFakeKernel()
	s := fakeSyncer(k)
	rs := twoPorts().ruleset()
	st := mustApply(t, s, rs)
	if !st.Read || st.Commits != 1 || st.TablesLoaded != 2 {
		t.Fatalf("first apply: %+v", st)
	}
	for range 3 {
		if st := mustApply(t, s, rs); st.Read || st.Commits != 0 {
			t.Fatalf("unchanged apply: %+v, want nothing", st)
		}
	}
	if k.reads != 1 || k.commits != 1 {
		t.Errorf("%d reads, %d commits, want 1 and 1", k.reads, k.commits)
	}
}

// TestSyncerDrift: a foreign commit moves the generation; the next Apply
// reads, reports the drift and repairs it; the one after costs nothing.
func TestSyncerDrift(t *testing.T) {
	k := newFakeKernel()
	s := fakeSyncer(k)
	rs := twoPorts().ruleset()
	mustApply(t, s, rs)
	chain := "i-" + portA
	if err := k.foreign(func(tx *knftables.Transaction) {
		tx.Flush(&knftables.Chain{Family: knftables.IPv4Family, Table: "moat", Name: chain})
		tx.Delete(&knftables.Element{Family: knftables.IPv4Family, Table: "moat", Map: "dispatch", Key: []string{`"qbr` + portB[:11] + `" . 0x10000000`}})
	}); err != nil {
		t.Fatal(err)
	}
	st := mustApply(t, s, rs)
	want := []string{
		"ip moat: chain " + chain + ": 0 rules, want 6",
		"ip moat: map dispatch: 1 elements missing or changed, 0 unexpected",
	}
	if !st.Read || st.Commits != 1 || strings.Join(st.Drift, "\n") != strings.Join(want, "\n") {
		t.Errorf("apply after drift: %+v, want a read, drift %q and one commit", st, want)
	}
	if st.ChainsRewritten != 1 || st.ElementsAdded != 1 || st.TablesLoaded != 0 {
		t.Errorf("repair: %+v, want one chain rewritten and one element added", st)
	}
	if drift, err := s.Check(context.Background(), rs); err != nil || len(drift) > 0 {
		t.Errorf("check after repair: %v, %v", drift, err)
	}
	if st := mustApply(t, s, rs); st.Read || st.Commits != 0 {
		t.Errorf("apply after repair: %+v, want nothing", st)
	}
}

// TestSyncerFailureRereads: a refused commit leaves the syncer not
// knowing; the next Apply reads first.
func TestSyncerFailureRereads(t *testing.T) {
	k := newFakeKernel()
	s := fakeSyncer(k)
	mustApply(t, s, twoPorts().ruleset())
	l := twoPorts()
	l.groups[0].members = append(l.groups[0].members, "10.0.0.5")
	k.refuse = errors.New("refused")
	if _, err := s.Apply(context.Background(), l.ruleset()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("apply: %v, want the refusal", err)
	}
	st := mustApply(t, s, l.ruleset())
	if !st.Read || st.Commits != 1 || st.ElementsAdded != 1 {
		t.Errorf("apply after a failure: %+v, want a read and the one element", st)
	}
}

// TestSyncerWithoutGeneration: with no generation source the syncer
// trusts what it committed (a foreign change goes unseen until
// Invalidate).
func TestSyncerWithoutGeneration(t *testing.T) {
	k := newFakeKernel()
	k.noGen = true
	s := fakeSyncer(k)
	rs := twoPorts().ruleset()
	mustApply(t, s, rs)
	k.foreign(func(tx *knftables.Transaction) {
		tx.Flush(&knftables.Chain{Family: knftables.IPv4Family, Table: "moat", Name: "sg-fallback"})
	})
	if st := mustApply(t, s, rs); st.Read || st.Commits != 0 {
		t.Errorf("apply: %+v, want no read without a generation", st)
	}
	s.Invalidate()
	if st := mustApply(t, s, rs); !st.Read || st.ChainsRewritten != 1 {
		t.Errorf("apply after Invalidate: %+v, want a read and sg-fallback rewritten", st)
	}
}

// TestSyncerRefusesBadInput: a Ruleset that fails validation writes
// nothing and leaves the syncer's knowledge as it was.
func TestSyncerRefusesBadInput(t *testing.T) {
	k := newFakeKernel()
	s := fakeSyncer(k)
	mustApply(t, s, twoPorts().ruleset())
	l := twoPorts()
	l.ports[0].id = `c0a350e0"; flush ruleset; "x`
	if _, err := s.Apply(context.Background(), l.ruleset()); err == nil {
		t.Fatal("apply of an injected port id succeeded")
	}
	foreign := &Ruleset{Tables: []*Table{{ID: TableID{knftables.InetFamily, "other"}}}}
	if _, err := s.Apply(context.Background(), foreign); err == nil || !strings.Contains(err.Error(), "not one of the syncer's tables") {
		t.Errorf("apply of another table: %v", err)
	}
	if k.commits != 1 {
		t.Errorf("%d commits, want only the first", k.commits)
	}
	if st := mustApply(t, s, twoPorts().ruleset()); st.Read || st.Commits != 0 {
		t.Errorf("apply after refused input: %+v, want nothing", st)
	}
}

// TestSyncerRemoveAll deletes exactly the owned tables.
func TestSyncerRemoveAll(t *testing.T) {
	k := newFakeKernel()
	s := fakeSyncer(k)
	mustApply(t, s, twoPorts().ruleset())
	k.foreign(func(tx *knftables.Transaction) {
		tx.Add(&knftables.Table{Family: knftables.InetFamily, Name: "moat"})
	})
	if err := s.RemoveAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(dump(k.f)); got != "add table inet moat" {
		t.Errorf("after RemoveAll the fake holds:\n%s", got)
	}
}
