// Package capture watches one port's path on the hybrid layout — the VM's
// interface, tap, qbr, qvb, qvo, br-int — at the same time, and says where
// packets stop. The packet parsing and the verdict are pure; running
// tcpdump sits behind the Sniffer interface.
package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Packet is what capture needs of a frame: enough to tell flows apart and
// to build the `moat trace` command that explains a drop.
type Packet struct {
	SrcMAC    string
	Proto     int // IP protocol, -1 for non-IP frames
	Src, Dst  netip.Addr
	Sport     int // TCP/UDP/SCTP/UDP-Lite/DCCP, else 0
	Dport     int
	ICMPType  int // ICMP/ICMPv6, else -1
	ICMPCode  int
	EtherType uint16
	VLAN      int // the 802.1Q VLAN id of a tagged frame, else 0
}

func (p Packet) String() string {
	if p.Proto < 0 {
		return fmt.Sprintf("ethertype 0x%04x from %s", p.EtherType, p.SrcMAC)
	}
	s := fmt.Sprintf("%s > %s proto %d", p.Src, p.Dst, p.Proto)
	switch {
	case p.ICMPType >= 0:
		s += fmt.Sprintf(" type %d code %d", p.ICMPType, p.ICMPCode)
	case p.Dport != 0:
		s += fmt.Sprintf(" %d > %d", p.Sport, p.Dport)
	}
	return s
}

// ReadPcap parses a pcap stream (tcpdump -w -) of Ethernet frames. It
// returns the packets read before the stream ended; a stream cut in the
// middle of a record (tcpdump killed) is not an error.
func ReadPcap(r io.Reader) ([]Packet, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil // nothing captured
		}
		return nil, err
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("not a pcap stream (magic %x)", hdr[:4])
	}
	if link := order.Uint32(hdr[20:24]); link != 1 {
		return nil, fmt.Errorf("pcap link type %d, want Ethernet (1)", link)
	}
	var out []Packet
	var rec [16]byte
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return out, nil
		}
		incl := order.Uint32(rec[8:12])
		if incl > 1<<18 {
			return out, fmt.Errorf("pcap record of %d bytes: corrupt stream", incl)
		}
		data := make([]byte, incl)
		if _, err := io.ReadFull(r, data); err != nil {
			return out, nil
		}
		out = append(out, ParseFrame(data))
	}
}

// ParseFrame decodes an Ethernet frame as far as it can. An 802.1Q tag
// (br-int's, or the provider VLAN on an uplink) is read and skipped.
func ParseFrame(b []byte) Packet {
	p := Packet{Proto: -1, ICMPType: -1}
	if len(b) < 14 {
		return p
	}
	p.SrcMAC = fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[6], b[7], b[8], b[9], b[10], b[11])
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	if et == 0x8100 && len(b) >= 4 {
		p.VLAN = int(binary.BigEndian.Uint16(b[0:2]) & 0x0fff)
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	p.EtherType = et
	var l4 []byte
	switch et {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return p
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return p
		}
		p.Proto = int(b[9])
		p.Src, _ = netip.AddrFromSlice(b[12:16])
		p.Dst, _ = netip.AddrFromSlice(b[16:20])
		if frag := binary.BigEndian.Uint16(b[6:8]) & 0x1fff; frag == 0 {
			l4 = b[ihl:]
		}
	case 0x86dd:
		if len(b) < 40 {
			return p
		}
		p.Proto = int(b[6])
		p.Src, _ = netip.AddrFromSlice(b[8:24])
		p.Dst, _ = netip.AddrFromSlice(b[24:40])
		l4 = b[40:] // extension headers are not followed: good enough here
	default:
		return p
	}
	switch p.Proto {
	case 6, 17, 132, 136, 33:
		if len(l4) >= 4 {
			p.Sport = int(binary.BigEndian.Uint16(l4[0:2]))
			p.Dport = int(binary.BigEndian.Uint16(l4[2:4]))
		}
	case 1, 58:
		if len(l4) >= 2 {
			p.ICMPType, p.ICMPCode = int(l4[0]), int(l4[1])
		}
	}
	return p
}
