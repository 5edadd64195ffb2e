package wiring

import (
	"reflect"
	"strings"
	"testing"
)

func TestVLANs(t *testing.T) {
	// op: "assign PORT NET" -> tag, "release PORT" -> tag (freed as want.freed),
	// "seed PORT NET TAG" -> error substring or "".
	type step struct {
		op, port, net string
		tag           int
		freed         bool
		err           string
	}
	cases := []struct {
		name     string
		min, max int
		steps    []step
		networks map[string]int
	}{
		{
			name: "lowest free tag per network, shared by its ports", min: 1, max: 4094,
			steps: []step{
				{op: "assign", port: "p1", net: "A", tag: 1},
				{op: "assign", port: "p2", net: "B", tag: 2},
				{op: "assign", port: "p3", net: "A", tag: 1},
				{op: "assign", port: "p3", net: "A", tag: 1}, // idempotent
			},
			networks: map[string]int{"A": 1, "B": 2},
		},
		{
			name: "released with the last port, then reused", min: 1, max: 4094,
			steps: []step{
				{op: "assign", port: "p1", net: "A", tag: 1},
				{op: "assign", port: "p2", net: "A", tag: 1},
				{op: "assign", port: "p3", net: "B", tag: 2},
				{op: "release", port: "p1", tag: 1, freed: false},
				{op: "release", port: "p2", tag: 1, freed: true},
				{op: "release", port: "p2", tag: 0, freed: false}, // unknown
				{op: "assign", port: "p4", net: "C", tag: 1},
				{op: "assign", port: "p5", net: "D", tag: 3},
			},
			networks: map[string]int{"B": 2, "C": 1, "D": 3},
		},
		{
			name: "a port moving network leaves the old one", min: 1, max: 4094,
			steps: []step{
				{op: "assign", port: "p1", net: "A", tag: 1},
				{op: "assign", port: "p1", net: "B", tag: 1}, // A freed first, B takes 1
			},
			networks: map[string]int{"B": 1},
		},
		{
			name: "exhausted range", min: 10, max: 11,
			steps: []step{
				{op: "assign", port: "p1", net: "A", tag: 10},
				{op: "assign", port: "p2", net: "B", tag: 11},
				{op: "assign", port: "p3", net: "C", err: "all 2 tags (10..11) are in use"},
				{op: "release", port: "p1", tag: 10, freed: true},
				{op: "assign", port: "p3", net: "C", tag: 10},
			},
			networks: map[string]int{"B": 11, "C": 10},
		},
		{
			name: "seeded after a restart, new networks avoid seeded tags", min: 1, max: 4094,
			steps: []step{
				{op: "seed", port: "p1", net: "A", tag: 2},
				{op: "seed", port: "p2", net: "A", tag: 2},
				{op: "seed", port: "p2", net: "A", tag: 2}, // idempotent
				{op: "seed", port: "p3", net: "B", tag: 5},
				{op: "assign", port: "p4", net: "C", tag: 1},
				{op: "assign", port: "p5", net: "D", tag: 3},
				{op: "assign", port: "p6", net: "A", tag: 2},
				{op: "release", port: "p1", tag: 2, freed: false},
				{op: "release", port: "p2", tag: 2, freed: false},
				{op: "release", port: "p6", tag: 2, freed: true},
			},
			networks: map[string]int{"B": 5, "C": 1, "D": 3},
		},
		{
			name: "seed conflicts record nothing", min: 1, max: 4094,
			steps: []step{
				{op: "seed", port: "p1", net: "A", tag: 2},
				{op: "seed", port: "p2", net: "B", tag: 2, err: "already belongs to network A"},
				{op: "seed", port: "p3", net: "A", tag: 3, err: "already has local VLAN 2"},
				{op: "seed", port: "p4", net: "C", tag: 0, err: "outside 1..4094"},
				{op: "seed", port: "p5", net: "C", tag: 4095, err: "outside 1..4094"},
				{op: "seed", port: "p6", net: "", tag: 7, err: "required"},
				{op: "assign", port: "p2", net: "B", tag: 1},
				{op: "assign", port: "p3", net: "A", tag: 2},
			},
			networks: map[string]int{"A": 2, "B": 1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := NewVLANRange(c.min, c.max)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range c.steps {
				switch s.op {
				case "assign":
					tag, err := v.Assign(s.port, s.net)
					if !errMatches(err, s.err) {
						t.Fatalf("step %d: Assign(%s, %s) error = %v, want %q", i, s.port, s.net, err, s.err)
					}
					if err == nil && tag != s.tag {
						t.Fatalf("step %d: Assign(%s, %s) = %d, want %d", i, s.port, s.net, tag, s.tag)
					}
				case "release":
					tag, freed := v.Release(s.port)
					if tag != s.tag || freed != s.freed {
						t.Fatalf("step %d: Release(%s) = %d, %v; want %d, %v", i, s.port, tag, freed, s.tag, s.freed)
					}
				case "seed":
					if err := v.Seed(s.port, s.net, s.tag); !errMatches(err, s.err) {
						t.Fatalf("step %d: Seed(%s, %s, %d) = %v, want %q", i, s.port, s.net, s.tag, err, s.err)
					}
				}
			}
			if got := v.Networks(); !reflect.DeepEqual(got, c.networks) {
				t.Errorf("Networks() = %v, want %v", got, c.networks)
			}
			for n, tag := range c.networks {
				if got, ok := v.Tag(n); !ok || got != tag {
					t.Errorf("Tag(%s) = %d, %v; want %d", n, got, ok, tag)
				}
			}
		})
	}
}

func TestVLANRangeInvalid(t *testing.T) {
	for _, r := range [][2]int{{0, 10}, {1, 4095}, {10, 9}} {
		if _, err := NewVLANRange(r[0], r[1]); err == nil {
			t.Errorf("NewVLANRange(%d, %d) = nil error", r[0], r[1])
		}
	}
}

func TestVLANsPortsSorted(t *testing.T) {
	v := NewVLANs()
	for _, p := range []string{"c", "a", "b"} {
		if _, err := v.Assign(p, "N"); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.Ports(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("Ports() = %v", got)
	}
	if n, ok := v.Network("b"); !ok || n != "N" {
		t.Errorf("Network(b) = %q, %v", n, ok)
	}
}

func errMatches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}
