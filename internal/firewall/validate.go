package firewall

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/moat-sg/moat/internal/hybrid"
)

// The compiler's boundary. Whatever reaches a rule text, a chain, set or
// device name or a comment is checked here or parsed and printed again
// (MACs, addresses, prefixes, protocols, numbers), so that no input can
// add a word, a rule or a line to what is written to the kernel, and so
// that nothing it renders makes iptables-restore fail the whole host. A
// bad object is rejected alone: the ports that depend on it, see
// Ruleset.Rejected.

// maxIDLen is the longest id accepted: Neutron keeps ids in 36-character
// columns (UUIDs).
const maxIDLen = 36

// checkID accepts what can be part of a chain, device or set name and of a
// comment as it is: 1 to 36 letters, digits, '-', '_' and '.'.
func checkID(id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("id %s is longer than %d characters", quoteShort(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !idChar(c) {
			return fmt.Errorf("id %s: character %q is not allowed (letters, digits, '-', '_', '.')", quoteShort(id), c)
		}
	}
	return nil
}

func idChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// quoteShort quotes s for an error message, cut to 64 bytes: a reason
// ends up in the API and the logs, which need not carry a huge input.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// checkPort checks what of a port becomes names: its id, its chains, its
// group ids, and its MAC (an agent plugs every port with it). Addresses
// are checked where they are parsed (buildPortStatic).
func checkPort(p *Port) error {
	if p.ID == "" {
		return errors.New("port without id")
	}
	if p.Unreadable != "" {
		return errors.New(p.Unreadable) // the store's words; it keeps them short
	}
	if err := checkID(p.ID); err != nil {
		return fmt.Errorf("bad port id: %w", err)
	}
	// A port's chain must not be one every host has.
	for _, kind := range []hybrid.ChainKind{hybrid.ChainIn, hybrid.ChainOut, hybrid.ChainSpoof} {
		if name := hybrid.PortChain(kind, p.ID); hybrid.FixedChain(name) {
			return fmt.Errorf("port id %q would name its chain %s, a chain every host has", p.ID, name)
		}
	}
	for _, g := range p.SecurityGroups {
		if err := checkID(g); err != nil {
			return fmt.Errorf("bad security group id: %w", err)
		}
	}
	if _, err := parseMAC(p.MAC); err != nil {
		return fmt.Errorf("bad MAC %s", quoteShort(p.MAC))
	}
	return nil
}

// checkPortRange checks a rule's port range (or ICMP type and code)
// against what its protocol takes: a value iptables refuses would fail the
// whole restore, and a range the renderer cannot express would widen the
// rule. compat keeps Neutron's one tolerance: a protocol it spells without
// a port match (a zero-padded number) drops the range.
func checkPortRange(r *Rule, p protoSpec, compat bool) error {
	lo, hi := r.PortRangeMin, r.PortRangeMax
	if lo == nil && hi == nil {
		return nil
	}
	if lo == nil {
		return fmt.Errorf("port_range_max %d without port_range_min", *hi)
	}
	if p.save == "" && p.key == "" {
		return errors.New("a port range needs a protocol")
	}
	inRange := func(name string, v *int, min, max int) error {
		if v != nil && (*v < min || *v > max) {
			return fmt.Errorf("%s %d is not in %d..%d", name, *v, min, max)
		}
		return nil
	}
	switch p.ports {
	case dports, multiportOnly:
		if err := errors.Join(inRange("port_range_min", lo, 1, 65535), inRange("port_range_max", hi, 1, 65535)); err != nil {
			return err
		}
		if hi != nil && *hi < *lo {
			return fmt.Errorf("port_range_min %d is above port_range_max %d", *lo, *hi)
		}
	case icmpType, icmpv6Type:
		return errors.Join(inRange("ICMP type", lo, 0, 255), inRange("ICMP code", hi, 0, 255))
	case noPorts:
		if !compat {
			return fmt.Errorf("protocol %s takes no port range", quoteShort(r.Protocol))
		}
	}
	return nil
}
