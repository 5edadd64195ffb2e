// Package netlog is the agent's side of security-group logging: the index
// of what each log rule's prefix stands for (set after every sync), the
// parsing of logged packets into events, the reader of the kernel's
// netlink log group, and where events go (a JSON-lines file, the server,
// a counter). docs/logging.md.
package netlog

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// Event is one logged packet, one JSON line.
type Event struct {
	Time      time.Time `json:"time"`
	Host      string    `json:"host"`
	PortID    string    `json:"port_id"`
	ProjectID string    `json:"project_id,omitempty"`
	Direction string    `json:"direction"`
	Ethertype string    `json:"ethertype"`
	Protocol  int       `json:"protocol"`
	Src       string    `json:"src"`
	SrcPort   int       `json:"src_port,omitempty"`
	Dst       string    `json:"dst"`
	DstPort   int       `json:"dst_port,omitempty"`
	ICMPType  *int      `json:"icmp_type,omitempty"`
	ICMPCode  *int      `json:"icmp_code,omitempty"`
	Verdict   string    `json:"verdict"`
	// SecurityGroupRuleID is the rule that accepted the packet (the first
	// of several that render as one kernel rule; all are in
	// SecurityGroupRuleIDs then).
	SecurityGroupRuleID  string   `json:"security_group_rule_id,omitempty"`
	SecurityGroupRuleIDs []string `json:"security_group_rule_ids,omitempty"`
	// Protection is the built-in rule that decided (default-drop,
	// anti-spoofing, invalid-state, ...), "" for a security group rule.
	Protection string   `json:"protection,omitempty"`
	LogIDs     []string `json:"log_ids,omitempty"`
}

// PortLogs is what the index knows of a logged port.
type PortLogs struct {
	ProjectID string
	LogIDs    []string
}

// Index maps log rule prefixes to what they stand for. The agent sets it
// after every sync; the reader looks packets up in it. Safe for
// concurrent use.
type Index struct {
	mu      sync.RWMutex
	entries map[string]firewall.LogEntry
	ports   map[string]PortLogs
}

// Set replaces the index.
func (ix *Index) Set(entries map[string]firewall.LogEntry, ports map[string]PortLogs) {
	ix.mu.Lock()
	ix.entries, ix.ports = entries, ports
	ix.mu.Unlock()
}

// Len is the number of log rules indexed.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.entries)
}

// Event builds the event of a packet logged with prefix; false when the
// prefix is not (or no longer) one of moat's.
func (ix *Index) Event(host, prefix string, at time.Time, payload []byte) (Event, bool) {
	ix.mu.RLock()
	e, ok := ix.entries[prefix]
	pl := ix.ports[e.PortID]
	ix.mu.RUnlock()
	if !ok {
		return Event{}, false
	}
	ev := Event{Time: at.UTC(), Host: host, PortID: e.PortID, ProjectID: pl.ProjectID, Direction: e.Direction,
		Ethertype: e.Ethertype, Verdict: e.Verdict, LogIDs: pl.LogIDs}
	if e.Origin == hybrid.OriginSGRule && len(e.Rules) > 0 {
		ev.SecurityGroupRuleID = e.Rules[0]
		if len(e.Rules) > 1 {
			ev.SecurityGroupRuleIDs = e.Rules
		}
	} else {
		ev.Protection = string(e.Origin)
	}
	Parse(payload, &ev)
	return ev, true
}

// Parse fills in the packet's protocol, addresses and ports (or ICMP type
// and code) from its network header on; a short or odd packet leaves
// what it cannot read empty.
func Parse(p []byte, ev *Event) {
	if len(p) < 1 {
		return
	}
	var l4 []byte
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return
		}
		ihl := int(p[0]&0x0f) * 4
		src, _ := netip.AddrFromSlice(p[12:16])
		dst, _ := netip.AddrFromSlice(p[16:20])
		ev.Src, ev.Dst, ev.Protocol = src.String(), dst.String(), int(p[9])
		if ev.Ethertype == "" {
			ev.Ethertype = hybrid.IPv4
		}
		// Only a first fragment has the transport header.
		if binary.BigEndian.Uint16(p[6:8])&0x1fff == 0 && ihl >= 20 && len(p) >= ihl {
			l4 = p[ihl:]
		}
	case 6:
		if len(p) < 40 {
			return
		}
		src, _ := netip.AddrFromSlice(p[8:24])
		dst, _ := netip.AddrFromSlice(p[24:40])
		ev.Src, ev.Dst = src.String(), dst.String()
		if ev.Ethertype == "" {
			ev.Ethertype = hybrid.IPv6
		}
		next, off := int(p[6]), 40
		// Skip the extension headers that may come before the transport
		// header (hop-by-hop, routing, destination options, fragment).
		for i := 0; i < 8 && (next == 0 || next == 43 || next == 60 || next == 44); i++ {
			if len(p) < off+8 {
				ev.Protocol = next
				return
			}
			if next == 44 {
				if binary.BigEndian.Uint16(p[off+2:off+4])&0xfff8 != 0 {
					ev.Protocol = int(p[off])
					return // not the first fragment
				}
				next, off = int(p[off]), off+8
				continue
			}
			next, off = int(p[off]), off+8+int(p[off+1])*8
		}
		ev.Protocol = next
		if len(p) >= off {
			l4 = p[off:]
		}
	default:
		return
	}
	switch ev.Protocol {
	case 6, 17, 33, 132, 136: // TCP, UDP, DCCP, SCTP, UDP-Lite
		if len(l4) >= 4 {
			ev.SrcPort, ev.DstPort = int(binary.BigEndian.Uint16(l4[0:2])), int(binary.BigEndian.Uint16(l4[2:4]))
		}
	case 1, 58: // ICMP, ICMPv6
		if len(l4) >= 2 {
			t, c := int(l4[0]), int(l4[1])
			ev.ICMPType, ev.ICMPCode = &t, &c
		}
	}
}
