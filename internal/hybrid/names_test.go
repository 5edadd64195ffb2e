package hybrid

import "testing"

// The expected names are Neutron's (and os-vif's) for the same ids.
func TestPortNames(t *testing.T) {
	id := "c0a350e0-43d4-4f2b-9c3a-1e2f3a4b5c6d"
	for got, want := range map[string]string{
		PortChain(ChainIn, id):        "neutron-openvswi-ic0a350e0-4",
		PortChain(ChainSpoof, id):     "neutron-openvswi-sc0a350e0-4",
		PortChain(ChainOut, "abc"):    "neutron-openvswi-oabc",
		TapName(id):                   "tapc0a350e0-43",
		BridgeVethName(id):            "qvbc0a350e0-43",
		IPSetName("IPv4", id):         "NIPv4c0a350e0-43d4-4f2b-9c3a-",
		IPSetName("IPv6", "short"):    "NIPv6short",
		ZoneComment("p1"):             "Set zone for p1",
		StatelessComment("p1"):        "Make p1 stateless",
		IPSetGroupID("NIPv6abc"):      "abc",
		IPSetGroupID("LIBVIRT-x"):     "",
		IntPatchPort("br-ex"):         "int-br-ex",
		PhyPatchPort("br-provider"):   "phy-br-provider",
		IntPatchPort("br-0123456789"): "int-br-01b84cd5",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	d := PortDevices(id)
	if d != (Devices{Tap: "tapc0a350e0-43", Bridge: "qbrc0a350e0-43", BridgeVeth: "qvbc0a350e0-43", OVSVeth: "qvoc0a350e0-43"}) {
		t.Errorf("devices %+v", d)
	}
	if DevicesOfTap("tapc0a350e0-43") != d {
		t.Error("DevicesOfTap")
	}
	pc := PortChainsUnder(Wrap, "c0a350e0-43d4")
	if pc.In != "neutron-openvswi-ic0a350e0-4" || pc.Out != "neutron-openvswi-oc0a350e0-4" || pc.Spoof != "neutron-openvswi-sc0a350e0-4" {
		t.Errorf("chains %+v", pc)
	}
	for chain, want := range map[string]ChainKind{"neutron-openvswi-ic0a350e0-4": 'i', "neutron-openvswi-sg-fallback": 0, "neutron-openvswi-sg-chain": 0, "INPUT": 0, "neutron-linuxbri-oabcdef0123": 'o'} {
		if k, _, _ := PortChainOf(chain); k != want {
			t.Errorf("PortChainOf(%s) = %c", chain, k)
		}
	}
	if k, cid, ok := PortChainOf("neutron-openvswi-sc0a350e0-4"); !ok || k != ChainSpoof || cid != "c0a350e0-4" {
		t.Errorf("PortChainOf: %c %q %v", k, cid, ok)
	}
	for _, name := range []string{ChainSG, ChainFallback, ChainFilterTop, ChainPrerouting} {
		if !FixedChain(name) || !OwnedChain(name) {
			t.Errorf("%s: fixed %v owned %v", name, FixedChain(name), OwnedChain(name))
		}
	}
	if OwnedChain("neutron-linuxbri-FORWARD") || OwnedChain("DOCKER") || !OwnedChain(PortChain(ChainIn, id)) {
		t.Error("OwnedChain")
	}
	if !OwnedIPSet("NIPv4x") || OwnedIPSet("nipv4x") || OwnedIPSet("LIBVIRT") {
		t.Error("OwnedIPSet")
	}
}

// Patch port names as neutron-lib's get_interface_name computes them
// (python3 -c 'from neutron_lib.plugins import utils;
// print(utils.get_interface_name(b, prefix="int-"))').
func TestPatchPorts(t *testing.T) {
	for _, c := range []struct{ bridge, intPort, phyPort string }{
		{"br-ex", "int-br-ex", "phy-br-ex"},
		{"br-eth1", "int-br-eth1", "phy-br-eth1"},
		{"br-provider", "int-br-provider", "phy-br-provider"},
		{"br-physnet-long-name", "int-br-ph1a8b24", "phy-br-ph1a8b24"},
		{"br-0123456789", "int-br-01b84cd5", "phy-br-01b84cd5"},
		{"br-01234567890", "int-br-010094cb", "phy-br-010094cb"},
	} {
		if got := IntPatchPort(c.bridge); got != c.intPort {
			t.Errorf("IntPatchPort(%s) = %s, want %s", c.bridge, got, c.intPort)
		}
		if got := PhyPatchPort(c.bridge); got != c.phyPort {
			t.Errorf("PhyPatchPort(%s) = %s, want %s", c.bridge, got, c.phyPort)
		}
	}
}

func TestDeviceNames(t *testing.T) {
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
		got := [4]string{TapName(c.id), BridgeName(c.id), BridgeVethName(c.id), OVSVethName(c.id)}
		want := [4]string{c.tap, c.qbr, c.qvb, c.qvo}
		if got != want {
			t.Errorf("names of %q = %v, want %v", c.id, got, want)
		}
		d := PortDevices(c.id)
		if [4]string{d.Tap, d.Bridge, d.BridgeVeth, d.OVSVeth} != want {
			t.Errorf("PortDevices(%q) = %+v, want %v", c.id, d, want)
		}
		for _, n := range got {
			if len(n) > MaxDeviceNameLen {
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

func TestCheckDeviceID(t *testing.T) {
	for _, id := range []string{"c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a", "port_1.a"} {
		if err := CheckDeviceID(id); err != nil {
			t.Errorf("CheckDeviceID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "a b", "a:b", "..", `a"b`, "a,b", "a=b"} {
		if err := CheckDeviceID(id); err == nil {
			t.Errorf("CheckDeviceID(%q) = nil, want an error", id)
		}
	}
}
