package netlog

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	cases := []struct {
		name, pkt          string
		proto              int
		src, dst           string
		sport, dport       int
		icmpType, icmpCode int
	}{
		// IPv4 TCP 10.0.0.1:40000 -> 10.0.0.2:22
		{"tcp4", "450000340000400040060000" + "0a000001" + "0a000002" + "9c400016" + "00000000", 6, "10.0.0.1", "10.0.0.2", 40000, 22, -1, -1},
		// IPv4 ICMP echo request
		{"icmp4", "450000540000400040010000" + "c0a80103" + "c0a80104" + "0800f7ff", 1, "192.168.1.3", "192.168.1.4", 0, 0, 8, 0},
		// IPv4 UDP second fragment: no ports
		{"frag4", "450000340000000140110000" + "0a000001" + "0a000002" + "9c400016", 17, "10.0.0.1", "10.0.0.2", 0, 0, -1, -1},
		// IPv6 UDP [fd00::1]:5353 -> [fd00::2]:53
		{"udp6", "6000000000081140" + "fd000000000000000000000000000001" + "fd000000000000000000000000000002" + "14e90035", 17, "fd00::1", "fd00::2", 5353, 53, -1, -1},
		// IPv6 with a hop-by-hop header before ICMPv6 (MLD report 143)
		{"hbh6", "6000000000080001" + "fe800000000000000000000000000001" + "ff020000000000000000000000000016" + "3a00050200000100" + "8f00", 58, "fe80::1", "ff02::16", 0, 0, 143, 0},
		{"short", "45", 0, "", "", 0, 0, -1, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ev Event
			Parse(mustHex(t, c.pkt), &ev)
			if ev.Protocol != c.proto || ev.Src != c.src || ev.Dst != c.dst || ev.SrcPort != c.sport || ev.DstPort != c.dport {
				t.Errorf("parsed %+v", ev)
			}
			if (ev.ICMPType == nil) != (c.icmpType < 0) || ev.ICMPType != nil && (*ev.ICMPType != c.icmpType || *ev.ICMPCode != c.icmpCode) {
				t.Errorf("ICMP %v %v, want %d/%d", ev.ICMPType, ev.ICMPCode, c.icmpType, c.icmpCode)
			}
		})
	}
}

func TestIndexEvent(t *testing.T) {
	var ix Index
	ix.Set(map[string]firewall.LogEntry{
		"moat_p1_A_0": {PortID: "p1", Direction: "ingress", Ethertype: "IPv4", Verdict: "ACCEPT", Origin: hybrid.OriginSGRule, Rules: []string{"r1"}},
		"moat_p1_D_1": {PortID: "p1", Direction: "ingress", Ethertype: "IPv4", Verdict: "DROP", Origin: hybrid.OriginDefaultDrop},
	}, map[string]PortLogs{"p1": {ProjectID: "proj", LogIDs: []string{"l1"}}})
	pkt := mustHex(t, "450000540000400040010000"+"c0a80103"+"c0a80104"+"0800f7ff")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev, ok := ix.Event("h", "moat_p1_A_0", at, pkt)
	if !ok || ev.SecurityGroupRuleID != "r1" || ev.Protection != "" || ev.Verdict != "ACCEPT" || ev.ProjectID != "proj" || ev.LogIDs[0] != "l1" || ev.Host != "h" {
		t.Errorf("accept event %+v", ev)
	}
	ev, ok = ix.Event("h", "moat_p1_D_1", at, pkt)
	if !ok || ev.Protection != "default-drop" || ev.SecurityGroupRuleID != "" || ev.Src != "192.168.1.3" {
		t.Errorf("drop event %+v", ev)
	}
	if _, ok := ix.Event("h", "someone-else", at, pkt); ok {
		t.Error("a foreign prefix made an event")
	}
}
