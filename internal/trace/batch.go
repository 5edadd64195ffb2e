package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// The batch format (moat trace --packets): one packet a line, a JSON
// object with the keys port, tap, direction, hook, protocol, src, dst,
// sport, dport, icmp_type, icmp_code, src_mac and state (numbers as JSON
// numbers or strings); blank lines and lines starting with # are skipped.
// Each packet's result is one JSON line: the trace, or {"line": N,
// "error": "..."} for a line that cannot be traced.

// BatchPacket is one line of a batch.
type BatchPacket struct {
	Port      string   `json:"port"`
	Tap       string   `json:"tap"`
	Direction string   `json:"direction"`
	Hook      string   `json:"hook"`
	Protocol  flexText `json:"protocol"`
	Src       string   `json:"src"`
	Dst       string   `json:"dst"`
	SrcPort   flexText `json:"sport"`
	DstPort   flexText `json:"dport"`
	ICMPType  flexText `json:"icmp_type"`
	ICMPCode  flexText `json:"icmp_code"`
	SrcMAC    string   `json:"src_mac"`
	State     string   `json:"state"`
}

// flexText is a JSON string or number, as text.
type flexText string

func (f *flexText) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexText(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, not %s", b)
	}
	*f = flexText(n.String())
	return nil
}

// Query is the packet as a trace query.
func (b *BatchPacket) Query() Query {
	return Query{
		Port: b.Port, Tap: b.Tap, Direction: Direction(b.Direction), Hook: Hook(b.Hook),
		Protocol: string(b.Protocol), Src: b.Src, Dst: b.Dst, SrcPort: string(b.SrcPort), DstPort: string(b.DstPort),
		ICMPType: string(b.ICMPType), ICMPCode: string(b.ICMPCode), SrcMAC: b.SrcMAC, State: b.State,
	}
}

// BatchError is a line that could not be traced.
type BatchError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// TraceBatch traces every packet of r and writes one JSON result a line to
// w. A line that cannot be traced gets its error line and the others are
// traced; the error then says how many failed.
func (h *Host) TraceBatch(w io.Writer, r io.Reader) error { return TraceBatch(h, w, r) }

// Tracer traces one packet: a Host (iptables rules) or an NFTHost
// (moat's nftables tables).
type Tracer interface {
	Trace(Query) (*Result, error)
}

// TraceBatch is Host.TraceBatch for any Tracer.
func TraceBatch(h Tracer, w io.Writer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	failed, n := 0, 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var bp BatchPacket
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var res any
		if err := dec.Decode(&bp); err != nil {
			res = BatchError{Line: n, Error: "bad packet: " + err.Error()}
		} else if tr, err := h.Trace(bp.Query()); err != nil {
			res = BatchError{Line: n, Error: err.Error()}
		} else {
			res = tr
		}
		if _, bad := res.(BatchError); bad {
			failed++
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the packets: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of the packets could not be traced (see the error lines)", failed)
	}
	return nil
}
