package hostview

import (
	"reflect"
	"testing"
)

// TestLogsTravelWhole: a view's logs go whole in a delta when they change,
// not at all when they do not, and Apply replaces them.
func TestLogsTravelWhole(t *testing.T) {
	old := New("h")
	old.Logs["l1"] = &Log{ID: "l1", Event: "ALL", Ports: []string{"p1"}}
	old.Logs["l2"] = &Log{ID: "l2", Event: "DROP", Ports: []string{"p1", "p2"}}
	now := old.Clone()
	if d := Diff(old, now); !d.Empty() {
		t.Fatalf("unchanged logs: %+v", d)
	}
	delete(now.Logs, "l1")
	now.Logs["l3"] = &Log{ID: "l3", Event: "ACCEPT", ResourceID: "g", Ports: []string{"p2"}}
	d := Diff(old, now)
	if !d.LogsWhole || len(d.Logs) != 2 || d.Logs[0].ID != "l2" || d.Logs[1].ID != "l3" {
		t.Fatalf("delta %+v", d)
	}
	// Cut into frames and merged again, as the stream does.
	var merged Delta
	for _, f := range Split(d, 1) {
		merged.Merge(&f)
	}
	got := old.Clone()
	got.Apply(&merged)
	if !reflect.DeepEqual(got.Logs, now.Logs) {
		t.Errorf("applied logs %v, want %v", got.Logs, now.Logs)
	}
	// All logs gone: an empty whole list.
	none := now.Clone()
	none.Logs = map[string]*Log{}
	d = Diff(now, none)
	if !d.LogsWhole || len(d.Logs) != 0 || d.Empty() {
		t.Fatalf("delta removing every log: %+v", d)
	}
	got.Apply(&d)
	if len(got.Logs) != 0 {
		t.Errorf("logs left: %v", got.Logs)
	}
	// A resume with changes sends the logs whole; one without, nothing.
	ch := NewChanged()
	if r := Resume(now, ch); !r.Empty() {
		t.Errorf("resume without changes: %+v", r)
	}
	ch.Logs = true
	if r := Resume(now, ch); !r.LogsWhole || len(r.Logs) != 2 {
		t.Errorf("resume after a log change: %+v", r)
	}
	// The snapshot round trip keeps them.
	if back := FromSnapshot(now.Snapshot()); !reflect.DeepEqual(back.Logs, now.Logs) {
		t.Errorf("snapshot round trip: %v", back.Logs)
	}
}
