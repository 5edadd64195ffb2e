package wiring

import "testing"

func TestNames(t *testing.T) {
	cases := []struct {
		id                        string
		devID, tap, qbr, qvb, qvo string
	}{
		{"c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a", "c0a350e0-43", "tapc0a350e0-43", "qbrc0a350e0-43", "qvbc0a350e0-43", "qvoc0a350e0-43"},
		{"c0a350e0-43", "c0a350e0-43", "tapc0a350e0-43", "qbrc0a350e0-43", "qvbc0a350e0-43", "qvoc0a350e0-43"},
		{"short", "short", "tapshort", "qbrshort", "qvbshort", "qvoshort"},
	}
	for _, c := range cases {
		if got := DevID(c.id); got != c.devID {
			t.Errorf("DevID(%q) = %q, want %q", c.id, got, c.devID)
		}
		got := [4]string{TapName(c.id), BridgeName(c.id), VethBridgeName(c.id), VethOVSName(c.id)}
		want := [4]string{c.tap, c.qbr, c.qvb, c.qvo}
		if got != want {
			t.Errorf("names of %q = %v, want %v", c.id, got, want)
		}
		for _, n := range got {
			if len(n) > 15 {
				t.Errorf("%s is longer than IFNAMSIZ-1", n)
			}
			if id, ok := DevIDFromName(n); !ok || id != c.devID {
				t.Errorf("DevIDFromName(%q) = %q, %v; want %q", n, id, ok, c.devID)
			}
		}
	}
}

func TestDevIDFromName(t *testing.T) {
	cases := []struct {
		name string
		id   string
		ok   bool
	}{
		{"qvo5f2b7e1d-9a", "5f2b7e1d-9a", true},
		{"br-int", "", false},
		{"qvo", "", false},
		{"eth0", "", false},
		{"tap0", "0", true},
		{"qbrbad:name", "", false},
	}
	for _, c := range cases {
		id, ok := DevIDFromName(c.name)
		if id != c.id || ok != c.ok {
			t.Errorf("DevIDFromName(%q) = %q, %v; want %q, %v", c.name, id, ok, c.id, c.ok)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a", "port_1.a"} {
		if err := validID(id); err != nil {
			t.Errorf("validID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "a b", "a:b", "..", `a"b`, "a,b", "a=b"} {
		if err := validID(id); err == nil {
			t.Errorf("validID(%q) = nil, want an error", id)
		}
	}
}

func TestAlias(t *testing.T) {
	a := portAlias{id: "c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a", network: "n1", mac: "fa:16:3e:c3:ea:d5", mtu: 1450}
	if got := parseAlias(a.String()); got != a {
		t.Errorf("parseAlias(%q) = %+v, want %+v", a.String(), got, a)
	}
	if got := parseAlias("someone else's alias"); got != (portAlias{}) {
		t.Errorf("parseAlias(foreign) = %+v, want zero", got)
	}
}
