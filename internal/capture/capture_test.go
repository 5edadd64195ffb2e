package capture

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// frame builds an Ethernet/IPv4 frame.
func frame(src, dst string, proto byte, l4 []byte) []byte {
	b := make([]byte, 14+20)
	copy(b[6:12], []byte{0xfa, 0x16, 0x3e, 1, 2, 3})
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	ip[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	return append(b, l4...)
}

func pcapOf(frames ...[]byte) []byte {
	var b bytes.Buffer
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint32(h[20:], 1)
	b.Write(h)
	for _, f := range frames {
		r := make([]byte, 16)
		binary.LittleEndian.PutUint32(r[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(r[12:], uint32(len(f)))
		b.Write(r)
		b.Write(f)
	}
	return b.Bytes()
}

func TestReadPcap(t *testing.T) {
	icmp := frame("192.168.1.3", "192.168.1.4", 1, []byte{8, 0, 0, 0})
	tcp := frame("10.0.0.1", "192.168.1.4", 6, []byte{0x9c, 0x40, 0, 22})
	ipip := frame("192.168.1.3", "192.168.1.4", 4, nil)
	raw := pcapOf(icmp, tcp, ipip)
	ps, err := ReadPcap(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"192.168.1.3 > 192.168.1.4 proto 1 type 8 code 0",
		"10.0.0.1 > 192.168.1.4 proto 6 40000 > 22",
		"192.168.1.3 > 192.168.1.4 proto 4",
	}
	if len(ps) != 3 {
		t.Fatalf("%d packets", len(ps))
	}
	for i := range want {
		if ps[i].String() != want[i] {
			t.Errorf("packet %d: %s, want %s", i, ps[i], want[i])
		}
	}
	// A stream cut mid-record (tcpdump killed) keeps what came before.
	if ps, err := ReadPcap(bytes.NewReader(raw[:len(raw)-5])); err != nil || len(ps) != 2 {
		t.Fatalf("truncated: %d %v", len(ps), err)
	}
	if ps, err := ReadPcap(bytes.NewReader(nil)); err != nil || len(ps) != 0 {
		t.Fatalf("empty: %d %v", len(ps), err)
	}
	if _, err := ReadPcap(strings.NewReader(strings.Repeat("x", 30))); err == nil {
		t.Fatal("garbage accepted")
	}
}

const portID = "290ec38c-b349-4fe5-a93a-188b99947afe"

func result(hop string, frames ...[]byte) HopResult {
	var ps []Packet
	for _, f := range frames {
		ps = append(ps, ParseFrame(f))
	}
	h := HopResult{Hop: Hop{Name: hop, Device: hop}, Packets: len(ps), packets: ps}
	h.Partial = hop == HopQbr || hop == HopBrInt
	return h
}

func TestAnalyze(t *testing.T) {
	in := frame("192.168.1.4", "192.168.1.3", 4, nil)                  // IPIP to the VM
	out := frame("192.168.1.3", "192.168.1.9", 6, []byte{0, 1, 0, 80}) // VM's http out
	cases := []struct {
		name    string
		results []HopResult
		verdict string
		stops   int
	}{
		{"ingress dropped by the firewall", []HopResult{
			result(HopVM), result(HopTap), result(HopQbr), result(HopQvb, in, in, in), result(HopQvo, in, in, in), result(HopBrInt),
		}, "ingress packets (192.168.1.4 > 192.168.1.3 protocol 4) stop between qbr and the tap: the host firewall dropped them", 1},
		{"egress dropped by the firewall", []HopResult{
			result(HopVM, out, out), result(HopTap, out, out), result(HopQbr), result(HopQvb), result(HopQvo), result(HopBrInt),
		}, "egress packets (192.168.1.3 > 192.168.1.9 protocol 6 port 80) stop between the tap and qbr", 1},
		{"delivered", []HopResult{
			result(HopVM, in), result(HopTap, in), result(HopQbr), result(HopQvb, in), result(HopQvo, in), result(HopBrInt),
		}, "every flow seen crossed all the watched hops", 0},
		{"lost in the veth", []HopResult{
			result(HopVM), result(HopTap), result(HopQbr), result(HopQvb), result(HopQvo, in), result(HopBrInt),
		}, "stop between qvo and qvb: not the security groups", 1},
		{"nothing", []HopResult{result(HopTap), result(HopQvb), result(HopQvo)}, "no IP packets seen", 0},
	}
	for _, c := range cases {
		rep := Analyze(portID, "lab-host", c.results)
		if !strings.Contains(rep.Verdict, c.verdict) || len(rep.Stops) != c.stops {
			t.Errorf("%s: verdict %q, %d stops", c.name, rep.Verdict, len(rep.Stops))
		}
	}
	rep := Analyze(portID, "lab-host", cases[0].results)
	want := "moat trace --netns lab-host --port " + portID + " --direction ingress --protocol 4 --src 192.168.1.4 --dst 192.168.1.3"
	if rep.Stops[0].Next != want || rep.Stops[0].Seen != 3 {
		t.Fatalf("next %q (%d packets), want %q", rep.Stops[0].Next, rep.Stops[0].Seen, want)
	}
}

func TestPath(t *testing.T) {
	hops := Path(portID, "h", "vm1", "eth0", "eth1")
	var names []string
	for _, h := range hops {
		names = append(names, h.Name+"="+h.Device)
	}
	got := strings.Join(names, " ")
	want := "vm=eth0 tap=tap290ec38c-b3 qbr=qbr290ec38c-b3 qvb=qvb290ec38c-b3 qvo=qvo290ec38c-b3 br-int=br-int physical=eth1"
	if got != want {
		t.Fatalf("got %s", got)
	}
}

// tagged puts an 802.1Q tag into an Ethernet frame.
func tagged(vlan int, f []byte) []byte {
	out := append([]byte{}, f[:12]...)
	out = binary.BigEndian.AppendUint16(out, 0x8100)
	out = binary.BigEndian.AppendUint16(out, uint16(vlan))
	return append(out, f[12:]...)
}

const peerID = "c34b3cbf-c422-4d10-b1ef-afe987c93bcf"

func TestAnalyzeBetween(t *testing.T) {
	a := Side{Host: "host1", Netns: "lab-host1", PortID: portID, VMNetns: "lab-vm1", VMDev: "eth0", Physical: "eth1"}
	b := Side{Host: "host2", Netns: "lab-host2", PortID: peerID, VMNetns: "lab-vm2", VMDev: "eth0", Physical: "eth1"}
	hops := PathBetween(a, b)
	var names []string
	for _, h := range hops {
		names = append(names, h.Host+":"+h.Name)
	}
	if got, want := strings.Join(names, " "), "host1:vm host1:tap host1:qbr host1:qvb host1:qvo host1:br-int host1:physical "+
		"host2:physical host2:br-int host2:qvo host2:qvb host2:qbr host2:tap host2:vm"; got != want {
		t.Fatalf("PathBetween:\n%s\nwant\n%s", got, want)
	}
	req := frame("192.168.1.3", "192.168.1.4", 1, []byte{8, 0, 0, 0})
	reply := frame("192.168.1.4", "192.168.1.3", 1, []byte{0, 0, 0, 0})
	wire := tagged(102, req)
	run := func(seen map[string][][]byte) Report {
		res := make([]HopResult, len(hops))
		for i, h := range hops {
			var ps []Packet
			for _, f := range seen[h.Host+":"+h.Name] {
				ps = append(ps, ParseFrame(f))
			}
			res[i] = newHopResult(h, ps)
			res[i].Partial = h.Name == HopQbr || h.Name == HopBrInt
		}
		return AnalyzeBetween(a, b, res)
	}
	upTo := func(last string, f, onWire []byte) map[string][][]byte {
		m := map[string][][]byte{}
		for _, h := range hops {
			k := h.Host + ":" + h.Name
			if h.Name == HopPhys {
				m[k] = [][]byte{onWire}
			} else {
				m[k] = [][]byte{f}
			}
			if k == last {
				break
			}
		}
		return m
	}
	cases := []struct {
		name, verdict, host, next string
		seen                      map[string][][]byte
	}{
		{"dropped by the receiver's groups", "ingress packets (192.168.1.3 > 192.168.1.4 protocol 1 type 8 code 0) stop between qbr and the tap on host host2: the host firewall",
			"host2", "moat trace --netns lab-host2 --port " + peerID + " --direction ingress --protocol 1 --src 192.168.1.3 --dst 192.168.1.4 --icmp-type 8 --icmp-code 0",
			upTo("host2:qvb", req, wire)},
		{"dropped by the sender's groups", "egress packets (192.168.1.3 > 192.168.1.4 protocol 1 type 8 code 0) stop between the tap and qbr on host host1",
			"host1", "moat trace --netns lab-host1 --port " + portID + " --direction egress --protocol 1 --src 192.168.1.3 --dst 192.168.1.4 --icmp-type 8 --icmp-code 0",
			upTo("host1:tap", req, wire)},
		{"lost on the trunk", "stop between host1's physical and host2's physical: they left one host's uplink and never reached the other's", "host1", "",
			upTo("host1:physical", req, wire)},
		{"not sent out by br-int", "egress packets (192.168.1.3 > 192.168.1.4 protocol 1 type 8 code 0) stop between qvo and physical on host host1: br-int and the physical bridge", "host1", "",
			upTo("host1:qvo", req, wire)},
		{"a reply back from the receiver, dropped by the sender's groups", "ingress packets (192.168.1.4 > 192.168.1.3 protocol 1 type 0 code 0) stop between qbr and the tap on host host1", "host1",
			"moat trace --netns lab-host1 --port " + portID + " --direction ingress --protocol 1 --src 192.168.1.4 --dst 192.168.1.3 --icmp-type 0 --icmp-code 0",
			func() map[string][][]byte {
				m := map[string][][]byte{}
				for _, h := range hops[3:] {
					k := h.Host + ":" + h.Name
					m[k] = [][]byte{reply}
					if h.Name == HopPhys {
						m[k] = [][]byte{tagged(102, reply)}
					}
				}
				return m
			}()},
	}
	for _, c := range cases {
		rep := run(c.seen)
		if !strings.Contains(rep.Verdict, c.verdict) || len(rep.Stops) != 1 || rep.Stops[0].Host != c.host || rep.Stops[0].Next != c.next {
			t.Errorf("%s:\nverdict %q\nstops %+v\nwant verdict with %q, host %s, next %q", c.name, rep.Verdict, rep.Stops, c.verdict, c.host, c.next)
		}
		for _, h := range rep.Hops {
			if h.Name == HopPhys && h.Packets > 0 && (len(h.VLANs) != 1 || h.VLANs[0] != 102) {
				t.Errorf("%s: %s's uplink VLANs %v, want [102]", c.name, h.Host, h.VLANs)
			}
		}
	}
}

func TestHopFilter(t *testing.T) {
	if got := hopFilter(Hop{Name: HopPhys}, "icmp"); got != "(icmp) or (vlan and (icmp))" {
		t.Errorf("uplink filter %q", got)
	}
	if got := hopFilter(Hop{Name: HopTap}, "icmp"); got != "icmp" {
		t.Errorf("tap filter %q", got)
	}
	if got := hopFilter(Hop{Name: HopPhys}, ""); got != "" {
		t.Errorf("empty filter %q", got)
	}
}
