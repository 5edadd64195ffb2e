package compilebench

import (
	"strings"
	"testing"
)

// TestMeasure500 checks the counts a run reports against Neutron's: at
// 500 ports, after bench.py's two changes, Neutron holds 16,560 IPv4 and
// 14,010 IPv6 rules (numbers-to-beat.md), and an app group change
// recompiles a tenth of the ports.
func TestMeasure500(t *testing.T) {
	r, err := Measure(500, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.RulesIPv4 != 16560 || r.RulesIPv6 != 14010 {
		t.Errorf("%d IPv4 and %d IPv6 rules, Neutron has 16560 and 14010", r.RulesIPv4, r.RulesIPv6)
	}
	if r.PortsRecompiledAll != 500 || r.PortsRecompiledApp != 50 {
		t.Errorf("recompiled %d ports for a common change and %d for an app group change, want 500 and 50", r.PortsRecompiledAll, r.PortsRecompiledApp)
	}
	if r.Ports != 500 || r.Repeat != 1 || r.IPSets == 0 || r.GOMAXPROCS < 1 {
		t.Errorf("result %+v", r)
	}
}

func TestMeasureBadInput(t *testing.T) {
	for _, c := range []struct {
		ports, repeat int
		err           string
	}{
		{0, 1, "want 1..60000"},
		{MaxPorts + 1, 1, "want 1..60000"},
		{-3, 1, "want 1..60000"},
		{10, 0, "want at least 1"},
	} {
		if _, err := Measure(c.ports, c.repeat); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Measure(%d, %d) = %v, want an error with %q", c.ports, c.repeat, err, c.err)
		}
	}
	if err := CheckPorts(MaxPorts); err != nil {
		t.Errorf("CheckPorts(%d) = %v", MaxPorts, err)
	}
}
