package nftrender

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

// logOptions are Neutron's [network_log] defaults on group 1.
var logOptions = firewall.LogOptions{Group: 1, Rate: 100, Burst: 25}

// withLogging logs every port of rs: the first accepts and drops, the
// second drops only, the others accepts only.
func withLogging(rs *firewall.Ruleset) (*firewall.Ruleset, map[string]firewall.LogEntry) {
	var ports []firewall.LogPort
	for i, z := range rs.PortZones {
		ports = append(ports, firewall.LogPort{PortID: z.PortID, Accept: i != 1, Drop: i <= 1})
	}
	return firewall.WithLogging(rs, ports, logOptions)
}

// TestLoggingGolden renders the reference scenarios with log rules on
// every port (testdata/logging-NAME.nft), and checks that without log
// objects the rendering is the plain one.
func TestLoggingGolden(t *testing.T) {
	for _, sc := range scenarios(t) {
		if len(sc.rs.PortZones) == 0 {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			if same, _ := firewall.WithLogging(sc.rs, nil, logOptions); same != sc.rs {
				t.Fatalf("WithLogging without ports changed the ruleset")
			}
			logged, index := withLogging(sc.rs)
			if len(index) == 0 {
				t.Fatalf("no log rule")
			}
			got := script(t, logged)
			if !strings.Contains(string(got), "log prefix") {
				t.Fatalf("no log statement rendered")
			}
			if plain := script(t, sc.rs); strings.Contains(string(plain), "log prefix") {
				t.Fatalf("the plain ruleset was changed")
			}
			path := filepath.Join("testdata", "logging-"+sc.name+".nft")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("rendering differs from %s (go test -update rewrites it):\n%s", path, diff(string(want), string(got)))
			}
		})
	}
}

// TestLoggingKernelLoad loads the logged renderings into a scratch
// namespace's nftables and checks that the kernel holds them exactly.
func TestLoggingKernelLoad(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "nft")
	ns := netnstest.New(t, "moat-nftlog")
	s := nft.NewSyncer(ns)
	ctx := context.Background()
	for _, sc := range scenarios(t) {
		logged, _ := withLogging(sc.rs)
		out, err := Render(logged)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, out); err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		s.Invalidate()
		drift, err := s.Check(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		if len(drift) > 0 {
			t.Errorf("%s: the kernel differs from the rendering: %v", sc.name, drift)
		}
	}
}
