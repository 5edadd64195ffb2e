package nftables

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// A Term is one piece of a rule or of a set element: fixed syntax (Kw), or
// a value of a known kind whose rendering cannot leave its place in the
// command (a quoted interface name, a set reference, a number, an
// address). Values from users (interface names, addresses, ports, chain
// and set names) enter only through the typed constructors; Kw is for the
// syntax moat's own code spells out, and refuses anything that could end
// the command, open a block or a string, start a comment or hide a
// reference (';', '#', '{', '"', '@', newlines, "jump", "comment", ...).
//
// A Term is checked when the Ruleset that holds it is (Apply does that
// first): constructors never fail, so rules read as they will be written.
type Term struct {
	kind termKind
	s    string // what the constructor was given, or its rendering
	ip   Interval
	hw   string
	n    uint64
	m    uint64 // the high end of a number range
}

type termKind uint8

const (
	termNone termKind = iota
	termKw
	termStr
	termIfName
	termIfPrefix
	termRef
	termJump
	termGoto
	termVerdict
	termNum
	termHex
	termNumRange
	termIP
	termMAC
)

// Kw is fixed nft syntax: words separated by single spaces, each made of
// letters, digits and the operators nft uses between values
// (". , : / & | ! = < > ^ - +"). E.g. Kw("meta mark & 0x10000000 == 0x10000000").
// Never give it a user's string: use the typed constructors.
func Kw(s string) Term { return Term{kind: termKw, s: s} }

// Str is a quoted string literal (e.g. a log prefix).
func Str(s string) Term { return Term{kind: termStr, s: s} }

// IfName is an interface name, written quoted ("qbr12345678-ab").
func IfName(name string) Term { return Term{kind: termIfName, s: name} }

// IfNamePrefix matches every interface whose name starts with prefix
// (nft's wildcard "qbr*").
func IfNamePrefix(prefix string) Term { return Term{kind: termIfPrefix, s: prefix} }

// Ref names a set or map of the same table: @name.
func Ref(name string) Term { return Term{kind: termRef, s: name} }

// Jump and Goto are verdicts to a regular chain of the same table.
func Jump(chain string) Term { return Term{kind: termJump, s: chain} }

// Goto: see Jump.
func Goto(chain string) Term { return Term{kind: termGoto, s: chain} }

// The verdicts without a chain.
var (
	Accept   = Term{kind: termVerdict, s: "accept"}
	Drop     = Term{kind: termVerdict, s: "drop"}
	Return   = Term{kind: termVerdict, s: "return"}
	Continue = Term{kind: termVerdict, s: "continue"}
)

// Num is a decimal number (a port, a protocol, a zone).
func Num(n uint64) Term { return Term{kind: termNum, n: n} }

// Hex is a number written in hexadecimal (a mark: 0x10000000).
func Hex(n uint64) Term { return Term{kind: termHex, n: n} }

// NumRange is an inclusive range of numbers (ports: 5000-5010).
func NumRange(lo, hi uint64) Term { return Term{kind: termNumRange, n: lo, m: hi} }

// Addr is one IPv4 or IPv6 address.
func Addr(a netip.Addr) Term { return IP(Interval{Lo: a, Hi: a}) }

// Prefix is an address prefix; its host bits must be zero.
func Prefix(p netip.Prefix) Term {
	iv, ok := PrefixInterval(p)
	if !ok {
		return Term{kind: termIP, s: p.String()} // refused by check
	}
	return IP(iv)
}

// IP is an address interval, written the way nft lists it: an address
// when it holds one, a prefix when it is one, a range otherwise.
func IP(iv Interval) Term { return Term{kind: termIP, ip: iv} }

// MAC is an Ethernet address.
func MAC(hw net.HardwareAddr) Term { return Term{kind: termMAC, hw: hw.String()} }

// ParseMAC is MAC of a string such as "fa:16:3e:00:00:01"; a bad one is
// refused when the term is checked.
func ParseMAC(s string) Term {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return Term{kind: termMAC, s: s}
	}
	return MAC(hw)
}

// kwForbidden are words Kw refuses: references and comments have terms
// of their own, so that the syncer sees every reference (for ordering)
// and adds every comment itself.
var kwForbidden = map[string]string{
	"jump":    "use Jump",
	"goto":    "use Goto",
	"comment": "use Rule.Comment",
}

func checkKw(s string) error {
	if s == "" {
		return fmt.Errorf("empty syntax term")
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != ' ' {
			c := s[i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.,:/&|!=<>^-+", c) >= 0 {
				continue
			}
			return fmt.Errorf("syntax %q: character %q is not allowed (only fixed syntax goes in Kw; values have typed terms)", s, c)
		}
		w := s[start:i]
		if w == "" {
			return fmt.Errorf("syntax %q: empty word (words are separated by one space)", s)
		}
		if hint, ok := kwForbidden[w]; ok {
			return fmt.Errorf("syntax %q: %q is not allowed here (%s)", s, w, hint)
		}
		start = i + 1
	}
	return nil
}

// check reports whether the term can be rendered safely.
func (t Term) check() error {
	switch t.kind {
	case termKw:
		return checkKw(t.s)
	case termStr:
		return checkQuoted("string", t.s)
	case termIfName:
		return checkIfName(t.s)
	case termIfPrefix:
		if len(t.s) > 14 {
			return fmt.Errorf("interface name prefix %q: longer than 14 bytes", t.s)
		}
		if t.s == "" {
			return nil
		}
		return checkIfName(t.s)
	case termRef:
		return checkName("set", t.s)
	case termJump, termGoto:
		return checkName("chain", t.s)
	case termVerdict, termNum, termHex:
		return nil
	case termNumRange:
		if t.n > t.m {
			return fmt.Errorf("range %d-%d: low end above high end", t.n, t.m)
		}
		return nil
	case termIP:
		if t.s != "" {
			return fmt.Errorf("prefix %s has host bits set", t.s)
		}
		return t.ip.check()
	case termMAC:
		if t.s != "" {
			return fmt.Errorf("bad MAC address %q", t.s)
		}
		return nil
	}
	return fmt.Errorf("empty term")
}

// String renders the term (it assumes check passed).
func (t Term) String() string {
	switch t.kind {
	case termKw, termRef, termVerdict:
		if t.kind == termRef {
			return "@" + t.s
		}
		return t.s
	case termStr, termIfName:
		return `"` + t.s + `"`
	case termIfPrefix:
		return `"` + t.s + `*"`
	case termJump:
		return "jump " + t.s
	case termGoto:
		return "goto " + t.s
	case termNum:
		return strconv.FormatUint(t.n, 10)
	case termHex:
		return "0x" + strconv.FormatUint(t.n, 16)
	case termNumRange:
		if t.n == t.m {
			return strconv.FormatUint(t.n, 10)
		}
		return strconv.FormatUint(t.n, 10) + "-" + strconv.FormatUint(t.m, 10)
	case termIP:
		return t.ip.String()
	case termMAC:
		return t.hw
	}
	return ""
}

// writeTo writes the term as String does, without a string of its own
// for the common kinds.
func (t Term) writeTo(b *strings.Builder) {
	switch t.kind {
	case termKw, termVerdict:
		b.WriteString(t.s)
	case termRef:
		b.WriteByte('@')
		b.WriteString(t.s)
	case termStr, termIfName:
		b.WriteByte('"')
		b.WriteString(t.s)
		b.WriteByte('"')
	case termJump:
		b.WriteString("jump ")
		b.WriteString(t.s)
	case termNum:
		var buf [20]byte
		b.Write(strconv.AppendUint(buf[:0], t.n, 10))
	default:
		b.WriteString(t.String())
	}
}

// chainRef is the chain a Jump or Goto term names.
func (t Term) chainRef() (string, bool) {
	if t.kind == termJump || t.kind == termGoto {
		return t.s, true
	}
	return "", false
}

// isVerdict reports whether the term is a verdict (with or without chain).
func (t Term) isVerdict() bool {
	return t.kind == termVerdict || t.kind == termJump || t.kind == termGoto
}
