package iptables

import (
	"context"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/netnstest"
)

// TestKernelLogRules applies the reference scenarios with log rules on
// every port: the kernel takes the NFLOG rules and prints them back
// exactly as moat renders them (no drift), on each backend.
func TestKernelLogRules(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(string(backend), func(t *testing.T) {
			needKernel(t, backend)
			ns := netnstest.New(t, "moat-iptlog")
			ctx := context.Background()
			s := NewSyncer(ns, backend)
			for i, rs := range scenarios(t) {
				var ports []firewall.LogPort
				for _, z := range rs.PortZones {
					ports = append(ports, firewall.LogPort{PortID: z.PortID, Accept: true, Drop: true})
				}
				logged, index := firewall.WithLogging(rs, ports, firewall.LogOptions{Group: 1, Rate: 100, Burst: 25})
				if len(ports) > 0 && len(index) == 0 {
					t.Fatalf("ruleset %d: no log rule", i)
				}
				createSets(t, ns, logged)
				if _, err := s.Apply(ctx, logged); err != nil {
					t.Fatalf("ruleset %d: %v", i, err)
				}
				assertInstalled(t, ns, backend, logged)
				if d, err := s.Check(ctx, logged); err != nil || len(d) > 0 {
					t.Errorf("ruleset %d: drift %q, %v", i, d, err)
				}
				if len(index) > 0 {
					save := netnstest.Run(t, ns, "", backend.Command(IPv4, "save"), "-t", "filter")
					if !strings.Contains(save, "-m limit --limit 100/sec --limit-burst 25 -j NFLOG --nflog-prefix moat_") {
						t.Errorf("ruleset %d: no NFLOG rule in iptables-save:\n%s", i, save)
					}
				}
			}
		})
	}
}
