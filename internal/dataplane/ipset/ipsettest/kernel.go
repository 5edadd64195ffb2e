// Package ipsettest is an in-memory stand-in for the kernel's ipsets and the
// ipset tool, for tests without root or a network namespace.
//
// Kernel implements dataplane.Exec for "ipset" with the commands the syncer
// uses (save, list -output save, restore, and create, add, del, flush, swap,
// destroy on the command line and in restore input), the global -exist
// option, and ipset's semantics where they matter: restore is not a
// transaction (it stops at the first failing line, keeping what came
// before), swap needs sets of the same type and family, a set in use cannot
// be destroyed, and hash:net members are stored canonically (a host without
// /32 or /128, host bits cleared).
package ipsettest

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/hybrid"
)

// Kernel is the fake. The zero value is not usable; call New.
type Kernel struct {
	mu   sync.Mutex
	sets map[string]*Set

	// InUse, when set, tells whether a set is referenced (by iptables);
	// destroying such a set fails as in the kernel.
	InUse func(name string) bool
	// FailRestore, when set, is called with each restore's input; an error
	// fails the command before anything is applied.
	FailRestore func(input string) error
}

// Set is one fake set.
type Set struct {
	Type, Family string
	MaxElem      int
	Members      []string // in insertion order, as a hash would not keep them sorted
}

// New returns a kernel without sets.
func New() *Kernel { return &Kernel{sets: map[string]*Set{}} }

// ExitError is a failed fake command's status.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "exit status " + strconv.Itoa(e.Code) }

// ExitCode returns the status, like (*exec.ExitError).ExitCode.
func (e *ExitError) ExitCode() int { return e.Code }

// Run implements dataplane.Exec.
func (k *Kernel) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fail := func(msg string) error {
		return &dataplane.CommandError{Cmd: strings.Join(append([]string{name}, args...), " "), Err: &ExitError{1}, Stderr: "ipset v7.17: " + msg + "\n"}
	}
	if name != "ipset" {
		return nil, fail("ipsettest: unknown command " + name)
	}
	exist := false
	var rest []string
	for _, a := range args {
		if a == "-exist" || a == "-!" {
			exist = true
		} else {
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return nil, fail("no command")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch rest[0] {
	case "save":
		return []byte(k.save()), nil
	case "list":
		if slices.Equal(rest[1:], []string{"-output", "save"}) {
			return []byte(k.save()), nil
		}
		return nil, fail("only list -output save is modelled")
	case "restore":
		in := string(stdin)
		if k.FailRestore != nil {
			if err := k.FailRestore(in); err != nil {
				return nil, fail(err.Error())
			}
		}
		for i, line := range strings.Split(in, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] == "COMMIT" || strings.HasPrefix(f[0], "#") {
				continue
			}
			lineExist := exist
			if j := slices.Index(f, "-exist"); j >= 0 {
				lineExist = true
				f = slices.Delete(f, j, j+1)
			}
			if err := k.do(f, lineExist); err != nil {
				return nil, fail(fmt.Sprintf("Error in line %d: %v", i+1, err))
			}
		}
		return nil, nil
	default:
		if err := k.do(rest, exist); err != nil {
			return nil, fail(err.Error())
		}
		return nil, nil
	}
}

func (k *Kernel) save() string {
	var w hybrid.IPSetWriter
	for _, n := range slices.Sorted(maps.Keys(k.sets)) {
		s := k.sets[n]
		w.Create(n, s.Type, s.Family, hybrid.IPSetHeader{HashSize: 1024, MaxElem: s.MaxElem, BucketSize: 12, InitVal: "0x12345678"})
		for _, m := range s.Members {
			w.Add(n, m)
		}
	}
	return w.String()
}

func (k *Kernel) do(f []string, exist bool) error {
	need := func(n int) error {
		if len(f) < n {
			return fmt.Errorf("%s: missing arguments", f[0])
		}
		return nil
	}
	get := func(name string) (*Set, error) {
		s := k.sets[name]
		if s == nil {
			return nil, fmt.Errorf("The set with the given name does not exist")
		}
		return s, nil
	}
	switch f[0] {
	case "create", "-N":
		if err := need(3); err != nil {
			return err
		}
		s := &Set{Type: f[2], Family: "inet", MaxElem: 65536}
		for i := 3; i+1 < len(f); i += 2 {
			switch f[i] {
			case "family":
				s.Family = f[i+1]
			case "maxelem":
				s.MaxElem, _ = strconv.Atoi(f[i+1])
			}
		}
		if len(f[1]) > hybrid.MaxIPSetNameLen {
			return fmt.Errorf("setname '%s' is longer than %d characters", f[1], hybrid.MaxIPSetNameLen)
		}
		if old := k.sets[f[1]]; old != nil {
			// Like ipset 7.17, -exist passes when the type and maxelem match
			// (it does not compare the family).
			if exist && old.Type == s.Type && old.MaxElem == s.MaxElem {
				return nil
			}
			return fmt.Errorf("Set cannot be created: set with the same name already exists")
		}
		k.sets[f[1]] = s
	case "add", "-A", "del", "-D":
		if err := need(3); err != nil {
			return err
		}
		s, err := get(f[1])
		if err != nil {
			return err
		}
		m, err := canonical(s, f[2])
		if err != nil {
			return err
		}
		i := slices.Index(s.Members, m)
		if f[0] == "add" || f[0] == "-A" {
			switch {
			case i >= 0 && !exist:
				return fmt.Errorf("Element cannot be added to the set: it's already added")
			case i < 0 && len(s.Members) >= s.MaxElem:
				return fmt.Errorf("Hash is full, cannot add more elements")
			case i < 0:
				s.Members = append(s.Members, m)
			}
		} else {
			switch {
			case i < 0 && !exist:
				return fmt.Errorf("Element cannot be deleted from the set: it's not added")
			case i >= 0:
				s.Members = slices.Delete(s.Members, i, i+1)
			}
		}
	case "flush", "-F":
		if err := need(2); err != nil {
			return err
		}
		s, err := get(f[1])
		if err != nil {
			return err
		}
		s.Members = nil
	case "swap", "-W":
		if err := need(3); err != nil {
			return err
		}
		a, err := get(f[1])
		if err != nil {
			return err
		}
		b, err := get(f[2])
		if err != nil {
			return err
		}
		if a.Type != b.Type || a.Family != b.Family {
			return fmt.Errorf("The sets cannot be swapped: their type does not match")
		}
		k.sets[f[1]], k.sets[f[2]] = b, a
	case "destroy", "-X":
		if err := need(2); err != nil {
			return err
		}
		if k.sets[f[1]] == nil {
			if exist {
				return nil
			}
			return fmt.Errorf("The set with the given name does not exist")
		}
		if k.InUse != nil && k.InUse(f[1]) {
			return fmt.Errorf("Set cannot be destroyed: it is in use by a kernel component")
		}
		delete(k.sets, f[1])
	default:
		return fmt.Errorf("unknown command %s", f[0])
	}
	return nil
}

// canonical stores a hash:net entry as the kernel prints it back.
func canonical(s *Set, m string) (string, error) {
	p, err := netip.ParsePrefix(m)
	if err != nil {
		a, err2 := netip.ParseAddr(m)
		if err2 != nil {
			return "", fmt.Errorf("Syntax error: cannot parse %s", m)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is6() != (s.Family == "inet6") {
		return "", fmt.Errorf("Syntax error: cannot parse %s: resolving to %s address failed", m, map[bool]string{true: "IPv4", false: "IPv6"}[s.Family == "inet"])
	}
	if p.Bits() == 0 {
		return "", fmt.Errorf("The value of the CIDR parameter of the IP address is invalid")
	}
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String(), nil
	}
	return p.String(), nil
}

// Sets returns a copy of the sets, for assertions.
func (k *Kernel) Sets() map[string]Set {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]Set, len(k.sets))
	for n, s := range k.sets {
		c := *s
		c.Members = slices.Clone(s.Members)
		out[n] = c
	}
	return out
}
