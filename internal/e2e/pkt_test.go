package e2e

// Packets from Go inside the lab's VM namespaces. A socket is created on
// an OS thread that has entered the namespace (lab.InNetns); it stays in
// that namespace for its whole life, so reading and writing it afterwards
// from any goroutine is fine.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moat-sg/moat/internal/lab"
)

// ---- packet building ----

// newTag returns a random marker that probes carry, so that receivers count
// only their own packets.
func newTag() []byte {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return []byte("moat-e2e-" + hex.EncodeToString(b))
}

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// icmpEcho is an ICMP echo request (typ 8) or reply (0).
func icmpEcho(typ byte, id, seq uint16, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0] = typ
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], data)
	binary.BigEndian.PutUint16(m[2:], csum(m))
	return m
}

// ipv4 is an IPv4 packet (header with checksum, then payload).
func ipv4(src, dst string, proto byte, ident uint16, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], ident)
	copy(h[12:16], net.ParseIP(src).To4())
	copy(h[16:20], net.ParseIP(dst).To4())
	binary.BigEndian.PutUint16(h[10:], csum(h))
	return append(h, payload...)
}

// udp is a UDP datagram without checksum (0: none, valid for IPv4).
func udp(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

// ether is an Ethernet II frame carrying IPv4.
func ether(dst, src string, payload []byte) []byte {
	d, err1 := net.ParseMAC(dst)
	s, err2 := net.ParseMAC(src)
	if err1 != nil || err2 != nil {
		panic(fmt.Sprintf("bad MAC %q or %q", dst, src))
	}
	f := append(append(append([]byte{}, d...), s...), 0x08, 0x00)
	return append(f, payload...)
}

// ipipInner is what an IPIP (IP protocol 4) packet carries: an inner IPv4
// packet, here 10.0.0.1 -> 10.0.0.2 ICMP echo with the tag.
func ipipInner(tag []byte, seq uint16) []byte {
	return ipv4("10.0.0.1", "10.0.0.2", 1, seq, icmpEcho(8, 0x4242, seq, tag))
}

// dhcp is a BOOTP/DHCP message (op 1 request, 2 reply) of type msgType
// (1 DISCOVER, 2 OFFER) for client mac, with the tag in the server name.
func dhcp(op byte, mac string, msgType byte, tag []byte) []byte {
	m := make([]byte, 240)
	m[0], m[1], m[2] = op, 1, 6
	_, _ = rand.Read(m[4:8]) // xid
	hw, _ := net.ParseMAC(mac)
	copy(m[28:], hw)
	copy(m[44:108], tag)                             // sname
	copy(m[236:240], []byte{0x63, 0x82, 0x53, 0x63}) // magic cookie
	return append(m, 53, 1, msgType, 255)            // message type, end
}

// ---- receivers ----

// counter counts probes that reached a receiver.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// wait polls until at least n arrived or timeout passed; returns the count.
func (c *counter) wait(n int, timeout time.Duration) int {
	poll(timeout, func() bool { return c.count() >= n })
	return c.count()
}

// listenIP opens a raw socket for IP protocol proto in namespace ns and
// counts the packets delivered to it that match (match sees the payload
// after the IPv4 header). Open before sending: the socket exists when this
// returns.
func listenIP(t *testing.T, ns string, proto int, match func(payload []byte) bool) *counter {
	t.Helper()
	var conn net.PacketConn
	err := lab.InNetns(ns, func() error {
		var err error
		conn, err = net.ListenPacket(fmt.Sprintf("ip4:%d", proto), "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatalf("raw socket for protocol %d in %s: %v", proto, ns, err)
	}
	c := &counter{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if match(buf[:n]) {
				c.add()
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return c
}

// echoRequestsWith matches ICMP echo requests carrying tag.
func echoRequestsWith(tag []byte) func([]byte) bool {
	return func(p []byte) bool { return len(p) >= 8 && p[0] == 8 && bytes.Contains(p[8:], tag) }
}

// carrying matches payloads that contain tag.
func carrying(tag []byte) func([]byte) bool {
	return func(p []byte) bool { return bytes.Contains(p, tag) }
}

// udpEnd is a UDP socket inside a VM: it counts datagrams carrying its tag
// and can echo them back and send.
type udpEnd struct {
	*counter
	conn *net.UDPConn
}

func listenUDP(t *testing.T, ns, ip string, port int, tag []byte, echo bool) *udpEnd {
	t.Helper()
	var conn *net.UDPConn
	err := lab.InNetns(ns, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
		return err
	})
	if err != nil {
		t.Fatalf("UDP socket %s:%d in %s: %v", ip, port, ns, err)
	}
	u := &udpEnd{counter: &counter{}, conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if !bytes.Contains(buf[:n], tag) {
				continue
			}
			u.add()
			if echo {
				_, _ = conn.WriteToUDP(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return u
}

// send sends n datagrams to ip:port from this socket.
func (u *udpEnd) send(t *testing.T, ip string, port int, payload []byte, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := u.conn.WriteToUDP(payload, &net.UDPAddr{IP: net.ParseIP(ip), Port: port}); err != nil {
			t.Fatalf("send UDP to %s:%d: %v", ip, port, err)
		}
		pace()
	}
}

// capture counts the frames carrying tag that cross interface ifname of
// namespace ns (an AF_PACKET socket, both directions).
func capture(t *testing.T, ns, ifname string, tag []byte) *counter {
	t.Helper()
	var f *os.File
	err := lab.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), "packet:"+ifname)
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", ifname, ns, err)
	}
	c := &counter{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			if bytes.Contains(buf[:n], tag) {
				c.add()
			}
		}
	}()
	t.Cleanup(func() { f.Close(); <-done })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ---- senders ----

// pace spaces the packets of a burst a little: OVS's userspace datapath
// and the VMs' backlogs then never drop a probe for lack of room.
func pace() { time.Sleep(5 * time.Millisecond) }

// sendIP sends n packets of IP protocol proto from namespace ns to dst,
// the kernel building the IPv4 header (a raw socket).
func sendIP(t *testing.T, ns string, proto int, dst string, n int, payload func(i int) []byte) {
	t.Helper()
	var conn *net.IPConn
	err := lab.InNetns(ns, func() error {
		var err error
		conn, err = net.DialIP(fmt.Sprintf("ip4:%d", proto), nil, &net.IPAddr{IP: net.ParseIP(dst)})
		return err
	})
	if err != nil {
		t.Fatalf("raw socket (protocol %d) in %s: %v", proto, ns, err)
	}
	defer conn.Close()
	for i := 0; i < n; i++ {
		if _, err := conn.Write(payload(i)); err != nil {
			t.Fatalf("send protocol %d to %s from %s: %v", proto, dst, ns, err)
		}
		pace()
	}
}

// sendEcho sends n ICMP echo requests carrying tag.
func sendEcho(t *testing.T, ns, dst string, tag []byte, n int) {
	t.Helper()
	// A new identifier per packet: every echo is a new conntrack entry,
	// judged by the rules (not waved through as ESTABLISHED).
	id := uint16(time.Now().UnixNano())
	sendIP(t, ns, 1, dst, n, func(i int) []byte { return icmpEcho(8, id+uint16(i), 1, tag) })
}

// sendHdrincl sends n IPv4 packets whose header is built here (IP_HDRINCL:
// any source address), routed by the kernel of namespace ns.
func sendHdrincl(t *testing.T, ns, dst string, n int, packet func(i int) []byte) {
	t.Helper()
	var fd int
	err := lab.InNetns(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW) // implies IP_HDRINCL
		return err
	})
	if err != nil {
		t.Fatalf("IP_HDRINCL socket in %s: %v", ns, err)
	}
	defer unix.Close(fd)
	var to unix.SockaddrInet4
	copy(to.Addr[:], net.ParseIP(dst).To4())
	for i := 0; i < n; i++ {
		if err := unix.Sendto(fd, packet(i), 0, &to); err != nil {
			t.Fatalf("send IP_HDRINCL packet from %s: %v", ns, err)
		}
		pace()
	}
}

// sendFrames sends n Ethernet frames on ifname of namespace ns (AF_PACKET:
// any source MAC and address).
func sendFrames(t *testing.T, ns, ifname string, n int, frame func(i int) []byte) {
	t.Helper()
	var fd int
	err := lab.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // 0: send only
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("AF_PACKET socket on %s in %s: %v", ifname, ns, err)
	}
	defer unix.Close(fd)
	for i := 0; i < n; i++ {
		if _, err := unix.Write(fd, frame(i)); err != nil {
			t.Fatalf("send frame on %s in %s: %v", ifname, ns, err)
		}
		pace()
	}
}

// ping runs `ping -c1 -W2` (extra: e.g. -6) in a namespace: nil when
// answered. (An answer ends it at once; a drop costs the 2 s.)
func ping(ns string, dst string, extra ...string) error {
	args := append([]string{"netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "2"}, extra...)
	out, err := exec.Command("ip", append(args, dst)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v: %s", dst, ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// pinger sends ICMP echo requests with one identifier (one conntrack
// entry, like `ping`) at a fixed rate and records the answers.
type pinger struct {
	conn net.PacketConn
	id   uint16
	mu   sync.Mutex
	sent int
	got  []time.Time
	stop chan struct{}
	done sync.WaitGroup
}

func startPinger(t *testing.T, ns, dst string, every time.Duration) *pinger {
	t.Helper()
	p := &pinger{id: uint16(time.Now().UnixNano()>>10) | 1, stop: make(chan struct{})}
	err := lab.InNetns(ns, func() error {
		var err error
		p.conn, err = net.ListenPacket("ip4:1", "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatalf("ICMP socket in %s: %v", ns, err)
	}
	to := &net.IPAddr{IP: net.ParseIP(dst)}
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := p.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == p.id {
				p.mu.Lock()
				p.got = append(p.got, time.Now())
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			if _, err := p.conn.WriteTo(icmpEcho(8, p.id, seq, []byte("moat-e2e-flow")), to); err == nil {
				p.mu.Lock()
				p.sent++
				p.mu.Unlock()
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *pinger) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.conn.Close()
	p.done.Wait()
}

// answers returns the number of requests sent and of answers received
// since since.
func (p *pinger) answers(since time.Time) (sent, answered int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.got {
		if !g.Before(since) {
			answered++
		}
	}
	return p.sent, answered
}

// lastAnswer is the time of the last answer (zero if none).
func (p *pinger) lastAnswer() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) == 0 {
		return time.Time{}
	}
	return p.got[len(p.got)-1]
}

// waitAnswers waits until n answers arrived after since.
func (p *pinger) waitAnswers(n int, since time.Time, timeout time.Duration) bool {
	return poll(timeout, func() bool { _, a := p.answers(since); return a >= n })
}

// linkLocal is the EUI-64 IPv6 link-local address of a MAC.
func linkLocal(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		panic("bad MAC " + mac)
	}
	ip := net.IP{0xfe, 0x80, 0, 0, 0, 0, 0, 0, hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]}
	return ip.String()
}
