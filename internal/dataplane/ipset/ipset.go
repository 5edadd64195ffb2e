// Package ipset makes the kernel's ipsets hold the members the firewall
// compiler computes for remote groups and address groups (Neutron's
// NIPv4…/NIPv6… sets), through `ipset save` and `ipset restore`.
//
// Like the iptables syncer, the Syncer is declarative and incremental: it
// reads the kernel only when it does not know what it holds (first use,
// Invalidate, after a failure) and otherwise diffs against what it wrote.
// Per set, a small change (fewer than BulkThreshold members added or
// removed, Neutron's threshold) is made with single add and del commands; a
// larger one fills a temporary set (the name plus "-n") and swaps it in, so
// that rules matching the set see the old members or the new ones, never a
// mix. All of an Apply goes to one `ipset restore` process.
//
// Order matters to the agent: Apply (sets created) before the iptables
// Apply that references them; Destroy of the stale sets Apply returns only
// after iptables no longer references them (the kernel refuses to destroy a
// set in use).
//
// Sets whose names do not start with NIPv4 or NIPv6 belong to other tools
// and are never read, changed or destroyed.
package ipset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

const (
	// BulkThreshold is the number of member changes to one set from which
	// the set is rebuilt and swapped instead of patched (Neutron's
	// IPSET_ADD_BULK_THRESHOLD).
	BulkThreshold = 5
	// defaultMaxElem is ipset's default maxelem, which Neutron keeps.
	defaultMaxElem = 65536
)

// Syncer applies the desired sets to one host's (or namespace's) ipsets. It
// is safe for concurrent use; calls are serialised.
type Syncer struct {
	exec dataplane.Exec

	mu sync.Mutex
	// known are the owned sets the kernel holds, or nil when the syncer
	// must read them.
	known map[string]*set
	last  Stats
}

// set is one set's state.
type set struct {
	typ, family string
	maxelem     int
	members     []string // as written (sorted, shared with the caller) or as read
}

// NewSyncer returns a syncer running ipset through exec.
func NewSyncer(exec dataplane.Exec) *Syncer { return &Syncer{exec: exec} }

// Stats describes the work of the last Apply.
type Stats struct {
	Saved    bool // the kernel's sets were read first
	Restores int  // ipset restore processes run
	// Created counts new sets, Swapped sets rebuilt through a temporary set,
	// Patched sets changed with single adds and dels.
	Created, Swapped, Patched int
	// Adds and Dels count single member commands (Patched sets and the
	// members of created sets); Filled the members written to temporary sets.
	Adds, Dels, Filled int
	Bytes              int // size of the restore input
}

// LastStats returns the Stats of the last Apply.
func (s *Syncer) LastStats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Invalidate makes the next Apply read the kernel first.
func (s *Syncer) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known = nil
}

// validate checks the desired sets and returns them by name.
func validate(sets []firewall.IPSet) (map[string]*firewall.IPSet, error) {
	want := make(map[string]*firewall.IPSet, len(sets))
	for i := range sets {
		w := &sets[i]
		switch {
		case !hybrid.OwnedIPSet(w.Name):
			return nil, fmt.Errorf("set %q: not a name moat owns (NIPv4…, NIPv6…)", w.Name)
		case len(w.Name)+len(hybrid.IPSetSwapSuffix) > hybrid.MaxIPSetNameLen:
			return nil, fmt.Errorf("set %q: longer than %d characters, no room for the temporary %q", w.Name, hybrid.MaxIPSetNameLen-len(hybrid.IPSetSwapSuffix), w.Name+hybrid.IPSetSwapSuffix)
		case w.Family != "inet" && w.Family != "inet6":
			return nil, fmt.Errorf("set %s: family %q, want inet or inet6", w.Name, w.Family)
		case w.Type == "" || strings.ContainsAny(w.Type, " \n"):
			return nil, fmt.Errorf("set %s: bad type %q", w.Name, w.Type)
		}
		if _, dup := want[w.Name]; dup {
			return nil, fmt.Errorf("set %s listed twice", w.Name)
		}
		want[w.Name] = w
	}
	for name := range want {
		if _, clash := want[name+hybrid.IPSetSwapSuffix]; clash {
			return nil, fmt.Errorf("sets %s and %s: the second is the first's temporary name", name, name+hybrid.IPSetSwapSuffix)
		}
	}
	return want, nil
}

// writeFill writes the restore lines that create set name (or, with
// -exist, keep it) with w's type and family and make w's members its
// only ones.
func writeFill(b *hybrid.IPSetWriter, name string, w *firewall.IPSet, maxelem int) {
	b.Create(name, w.Type, w.Family, hybrid.IPSetHeader{HashSize: 1024, MaxElem: maxelem})
	b.Line("flush", name)
	for _, m := range w.Members {
		b.Add(name, m)
	}
}

// Apply makes the kernel hold sets (every owned set moat needs, with its
// members) and returns the owned sets that exist but are not wanted, sorted:
// destroy them with Destroy once iptables no longer uses them. Members are
// compared as `ipset save` prints them, which is how the compiler spells
// them. On error the syncer forgets what it knew: ipset restore is not a
// transaction (it stops at the first failing line), so the next Apply reads
// the kernel again.
func (s *Syncer) Apply(ctx context.Context, sets []firewall.IPSet) ([]string, error) {
	want, err := validate(sets)
	if err != nil {
		return nil, fmt.Errorf("apply ipsets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{}
	defer func() { s.last = st }()
	if s.known == nil {
		known, err := s.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("apply ipsets: %w", err)
		}
		s.known = known
		st.Saved = true
	}

	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	var b hybrid.IPSetWriter
	next := make(map[string]*set, len(s.known))
	for name, k := range s.known {
		next[name] = k
	}
	for _, name := range names {
		w := want[name]
		k := s.known[name]
		n := &set{typ: w.Type, family: w.Family, members: w.Members}
		switch {
		case k == nil:
			// New: nothing refers to it yet, fill it in place. The flush
			// covers a set that exists after all (a stale view; -exist lets
			// the create pass).
			n.maxelem = maxElem(len(w.Members))
			writeFill(&b, name, w, n.maxelem)
			st.Created++
			st.Adds += len(w.Members)
		case k.typ != w.Type || k.family != w.Family:
			s.known = nil
			return nil, fmt.Errorf("apply ipsets: set %s exists as %s family %s, want %s family %s; it cannot be replaced while rules use it: remove the rules and the set (ipset destroy %s) or restart the agent after removing them",
				name, k.typ, k.family, w.Type, w.Family, name)
		default:
			n.maxelem = k.maxelem
			if slices.Equal(k.members, w.Members) {
				break
			}
			add, del := diff(k.members, w.Members)
			if len(add) == 0 && len(del) == 0 {
				break // same members, another order
			}
			if len(add)+len(del) < BulkThreshold && (k.maxelem == 0 || len(w.Members) <= k.maxelem) {
				for _, m := range del {
					b.Line("del", name, m)
				}
				for _, m := range add {
					b.Add(name, m)
				}
				st.Patched++
				st.Adds += len(add)
				st.Dels += len(del)
				break
			}
			tmp := name + hybrid.IPSetSwapSuffix
			if _, left := s.known[tmp]; left {
				// A temporary set left by a crash may have other
				// parameters; nothing refers to it.
				b.Line("destroy", tmp)
				delete(next, tmp)
			}
			n.maxelem = max(k.maxelem, maxElem(len(w.Members)))
			writeFill(&b, tmp, w, n.maxelem)
			b.Line("swap", tmp, name)
			b.Line("destroy", tmp)
			st.Swapped++
			st.Filled += len(w.Members)
		}
		next[name] = n
	}
	if b.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in := b.String()
		st.Restores++
		st.Bytes += len(in)
		// -exist: adding a member that is there or deleting one that is
		// not is no error, so a change already (partly) made converges.
		if _, err := s.exec.Run(ctx, []byte(in), "ipset", "-exist", "restore"); err != nil {
			s.known = nil
			return nil, fmt.Errorf("apply ipsets: restore: %w", err)
		}
	}
	s.known = next
	return s.stale(want), nil
}

// stale lists known owned sets that are not wanted.
func (s *Syncer) stale(want map[string]*firewall.IPSet) []string {
	var out []string
	for name := range s.known {
		if _, ok := want[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// maxElem is the maxelem a set of n members is created with: ipset's
// default (Neutron's) unless the set would not fit comfortably.
func maxElem(n int) int {
	m := defaultMaxElem
	for n > m*3/4 {
		m *= 2
	}
	return m
}

// diff returns the members of want missing from have, and those of have
// not in want, each in the order of its list.
func diff(have, want []string) (add, del []string) {
	h := make(map[string]struct{}, len(have))
	for _, m := range have {
		h[m] = struct{}{}
	}
	w := make(map[string]struct{}, len(want))
	for _, m := range want {
		w[m] = struct{}{}
		if _, ok := h[m]; !ok {
			add = append(add, m)
		}
	}
	for _, m := range have {
		if _, ok := w[m]; !ok {
			del = append(del, m)
		}
	}
	return add, del
}

// Destroy destroys owned sets, e.g. the stale ones Apply returned, once
// iptables no longer refers to them. A set that is already gone is no
// error. It refuses names moat does not own.
func (s *Syncer) Destroy(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	for _, n := range names {
		if !hybrid.OwnedIPSet(n) {
			return fmt.Errorf("destroy ipset %q: not a set moat owns", n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var b hybrid.IPSetWriter
	for _, n := range names {
		b.Line("destroy", n)
	}
	if _, err := s.exec.Run(ctx, []byte(b.String()), "ipset", "-exist", "restore"); err == nil {
		for _, n := range names {
			delete(s.known, n)
		}
		return nil
	}
	// ipset restore stops at the first failure (typically a set still in
	// use); destroy one by one so that one set does not block the others,
	// and report each failure.
	var errs []error
	for _, n := range names {
		if _, err := s.exec.Run(ctx, nil, "ipset", "-exist", "destroy", n); err != nil {
			errs = append(errs, fmt.Errorf("destroy ipset %s: %w", n, err))
			continue
		}
		delete(s.known, n)
	}
	return errors.Join(errs...)
}

// Check reads the kernel and reports how moat's sets differ from sets:
// missing sets, sets of the wrong type or family, missing or extra members,
// and owned sets that are not wanted. It also replaces the syncer's view
// with what it read, so that an Apply that follows repairs the drift
// without reading again.
func (s *Syncer) Check(ctx context.Context, sets []firewall.IPSet) ([]string, error) {
	want, err := validate(sets)
	if err != nil {
		return nil, fmt.Errorf("check ipsets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	known, err := s.read(ctx)
	if err != nil {
		s.known = nil
		return nil, fmt.Errorf("check ipsets: %w", err)
	}
	s.known = known
	var drift []string
	for _, w := range sets {
		k := known[w.Name]
		switch {
		case k == nil:
			drift = append(drift, "missing set "+w.Name)
		case k.typ != w.Type || k.family != w.Family:
			drift = append(drift, fmt.Sprintf("set %s is %s family %s, want %s family %s", w.Name, k.typ, k.family, w.Type, w.Family))
		default:
			if add, del := diff(k.members, w.Members); len(add)+len(del) > 0 {
				drift = append(drift, fmt.Sprintf("set %s: %d members missing, %d unexpected", w.Name, len(add), len(del)))
			}
		}
	}
	for _, n := range s.stale(want) {
		drift = append(drift, "unexpected set "+n)
	}
	slices.Sort(drift)
	return drift, nil
}

// read runs ipset save and returns the owned sets.
func (s *Syncer) read(ctx context.Context) (map[string]*set, error) {
	out, err := s.exec.Run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, fmt.Errorf("read ipsets: %w", err)
	}
	sets, err := parseSave(string(out))
	if err != nil {
		return nil, fmt.Errorf("read ipsets: %w", err)
	}
	return sets, nil
}

// parseSave reads `ipset save` (or `ipset list -output save`) output
// (hybrid.ReadIPSetSave) and returns the owned sets. A member is the entry's
// first word: options some set types print after it (timeout, comment,
// nomatch) are not moat's.
func parseSave(out string) (map[string]*set, error) {
	text, err := hybrid.ReadIPSetSave(out)
	if err != nil {
		return nil, err
	}
	sets := map[string]*set{}
	for _, t := range text {
		if !hybrid.OwnedIPSet(t.Name) {
			continue
		}
		st := &set{typ: t.Type, family: t.Family, maxelem: t.MaxElem}
		for _, m := range t.Members {
			st.members = append(st.members, hybrid.IPSetEntry(m))
		}
		sets[t.Name] = st
	}
	return sets, nil
}
