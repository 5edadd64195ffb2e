package wiring

import "testing"

func TestAlias(t *testing.T) {
	a := portAlias{id: "c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a", network: "n1", mac: "fa:16:3e:c3:ea:d5", mtu: 1450}
	if got := parseAlias(a.String()); got != a {
		t.Errorf("parseAlias(%q) = %+v, want %+v", a.String(), got, a)
	}
	if got := parseAlias("someone else's alias"); got != (portAlias{}) {
		t.Errorf("parseAlias(foreign) = %+v, want zero", got)
	}
}
