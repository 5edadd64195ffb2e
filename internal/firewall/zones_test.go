package firewall

import (
	"errors"
	"strconv"
	"testing"

	"github.com/moat-sg/moat/internal/hybrid"
)

func TestZoneAllocator(t *testing.T) {
	all := func(string) bool { return true }
	tests := []struct {
		name     string
		existing map[string]int
		present  func(string) bool
		ports    []string
		want     []int
		wantErr  error
	}{
		{name: "fresh host counts up from 4097", ports: []string{"a", "b", "c"}, want: []int{4097, 4098, 4099}},
		{name: "existing zones are kept", existing: map[string]int{"b": 5000}, ports: []string{"a", "b"}, want: []int{5001, 5000}},
		// Neutron does not fill gaps while it can count up.
		{name: "gaps wait", existing: map[string]int{"old": 4100}, ports: []string{"a"}, want: []int{4101}},
		{name: "zones below the range", existing: map[string]int{"x": 7}, ports: []string{"a"}, want: []int{4097}},
		{name: "at the top the lowest gap is reused",
			existing: map[string]int{"x": 4097, "y": 4099, "z": hybrid.ZoneMax},
			ports:    []string{"a", "b"}, want: []int{4098, 4100}},
		{name: "exhausted range frees ports that left",
			existing: fullRange("gone"), present: func(id string) bool { return id != "gone4200" },
			ports: []string{"a"}, want: []int{4200}},
		{name: "exhausted", existing: fullRange("here"), ports: []string{"a"}, wantErr: ErrZonesExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newZoneAllocator(tt.existing)
			present := tt.present
			if present == nil {
				present = all
			}
			var got []int
			for _, p := range tt.ports {
				z, err := a.zone(p, present)
				if err != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("zone(%s): %v, want %v", p, err, tt.wantErr)
					}
					return
				}
				got = append(got, z)
			}
			if tt.wantErr != nil {
				t.Fatalf("no error, want %v", tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// fullRange assigns every zone to a port named prefix+zone.
func fullRange(prefix string) map[string]int {
	m := map[string]int{}
	for z := hybrid.ZoneMin; z <= hybrid.ZoneMax; z++ {
		m[prefix+strconv.Itoa(z)] = z
	}
	return m
}
