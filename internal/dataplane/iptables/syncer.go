// Package iptables makes the kernel's iptables hold the chains the firewall
// compiler computes, with iptables-save and iptables-restore of one backend
// (legacy or nft), touching nothing that other tools own.
//
// Like Calico Felix's table layer, the Syncer is declarative: Apply is given
// the whole desired Ruleset and writes only the difference. It reads the
// kernel (iptables-save) only when it does not know what the kernel holds —
// the first time, after Invalidate and after a failure — and otherwise diffs
// against what it wrote last, so that a change costs what changed and no
// read: a chain that differs in a few rules gets -D and -I lines, one that
// differs more is flushed and written again, unchanged chains are not
// written. Each family gets one iptables-restore --noflush process, one
// transaction per table (filter, then raw); a failed transaction leaves
// that table as it was, and the syncer forgets what it knew so that the
// next Apply starts from a fresh read. (With iptables-nft, many new chains
// are loaded in stages before that transaction, which alone makes them
// reachable; see tablePlan.stage.)
//
// Ownership: moat owns the chains named neutron-openvswi-* and
// neutron-filter-top (Neutron's hybrid layout, so that a host Neutron ran is
// taken over in place), the canary chain, and in the built-in chains the
// rules that jump to those chains, which it keeps at the top. Everything else
// in the tables — other tools' chains and rules, other tables, the built-in
// chains' policies — is never written: built-in chains are edited with -I and
// -D only, never declared (a ":FORWARD ACCEPT" line would reset a policy
// another tool set).
//
// How an agent uses it, with the ipset syncer (package ipset):
//
//	zones, _ := syncer.InstalledZones(ctx)       // at start: keep ports' conntrack zones
//	stale, err := sets.Apply(ctx, rs.IPSets)     // sets exist before rules use them
//	st, err := syncer.Apply(ctx, rs)             // on error: retry with backoff
//	err = sets.Destroy(ctx, stale)               // after no rule uses them
//
// and for drift, often CanaryPresent (Invalidate and Apply when false) and
// every few seconds Check (Apply when it reports anything; Check has
// refreshed the view). With iptables-nft both cost no process while nothing
// wrote to the namespace (see GenerationFunc); with iptables-legacy each
// reads the whole table from the kernel (Check about 0.25 s of CPU at 1,000
// ports). RemoveAll on uninstall.
//
// Package iptablestest holds an in-memory kernel for tests of code built on
// the syncer.
package iptables

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/firewall"
)

// Syncer applies Rulesets to one host's (or network namespace's) iptables.
// It is safe for concurrent use; calls are serialised.
type Syncer struct {
	exec    dataplane.Exec
	backend Backend

	mu sync.Mutex
	// known is what the kernel holds per family (filter, raw), or nil when
	// the syncer does not know and must read it.
	known [2]*[2]*tableState
	// gen, if set, reads the namespace's ruleset generation. verified says
	// that known (both families) is exactly the kernel's state at
	// generation verifiedGen: read by a save, or written by the syncer with
	// no other transaction in between.
	gen         GenerationFunc
	verified    bool
	verifiedGen uint32

	stageLimits stageLimits // iptables-nft only; tests make them small
}

// NewSyncer returns a syncer that runs backend's tools through exec. It
// panics on an unknown backend (use ParseBackend on user input).
//
// With iptables-nft and an exec that is a dataplane.Host or dataplane.Netns,
// the syncer also reads the namespace's nf_tables generation (NFTGeneration)
// so that Check and CanaryPresent skip reading the tables when nothing was
// written since they were last read; SetGeneration sets another source.
func NewSyncer(exec dataplane.Exec, backend Backend) *Syncer {
	if !backend.Valid() {
		panic("iptables: unknown backend " + string(backend))
	}
	s := &Syncer{exec: exec, backend: backend, stageLimits: defaultStageLimits}
	if backend == NFT {
		switch e := exec.(type) {
		case dataplane.Host:
			s.gen = NFTGeneration("")
		case dataplane.Netns:
			s.gen = NFTGeneration(e.Name)
		}
	}
	return s
}

// SetGeneration sets the source of the ruleset generation (nil: none; then
// Check always reads the kernel). Only a source that changes on every write
// to the namespace's tables is correct: NFTGeneration for iptables-nft.
func (s *Syncer) SetGeneration(g GenerationFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen = g
	s.verified = false
}

// generation reads the generation; ok is false without a source or when it
// cannot be read (the callers then read the tables, as without one).
func (s *Syncer) generation(ctx context.Context) (uint32, bool) {
	if s.gen == nil {
		return 0, false
	}
	g, err := s.gen(ctx)
	return g, err == nil
}

// unchanged reports whether the kernel is still exactly what the syncer
// knows, by the generation.
func (s *Syncer) unchanged(ctx context.Context) bool {
	if !s.verified || s.known[IPv4] == nil || s.known[IPv6] == nil {
		return false
	}
	g, ok := s.generation(ctx)
	return ok && g == s.verifiedGen
}

// Stats describes the work one Apply did.
type Stats struct {
	// Saved is set when the kernel's tables were read first: the first
	// Apply, and the first after Invalidate or a failure. (After Check no
	// read is needed: Check refreshes the syncer's view itself.)
	Saved bool
	// Saves and Restores count the iptables-save and iptables-restore
	// processes run.
	Saves, Restores int
	// ChainsCreated, ChainsRewritten, ChainsPatched and ChainsDeleted
	// count owned chains: created, flushed and written again, changed with
	// a few -D and -I lines, deleted.
	ChainsCreated, ChainsRewritten, ChainsPatched, ChainsDeleted int
	// RulesWritten counts the rules written (-A or -I) to owned chains;
	// BuiltinRules the -I and -D lines in built-in chains.
	RulesWritten, BuiltinRules int
	// Bytes is the size of the restore input.
	Bytes int
}

// ChainsWritten is the number of owned chains created, rewritten or patched.
func (s Stats) ChainsWritten() int { return s.ChainsCreated + s.ChainsRewritten + s.ChainsPatched }

func (s *Stats) add(p *tablePlan) {
	s.ChainsCreated += p.created
	s.ChainsRewritten += p.rewritten
	s.ChainsPatched += p.patched
	s.ChainsDeleted += len(p.remove)
	s.RulesWritten += p.rules
	s.BuiltinRules += len(p.builtin)
}

// Invalidate makes the next Apply read the kernel before diffing, e.g. when
// the canary is gone or another component may have written the tables.
func (s *Syncer) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known = [2]*[2]*tableState{}
	s.verified = false
}

// Apply makes the kernel hold rs's filter and raw tables for both families,
// writing only chains that differ. On error the family that failed is
// forgotten (the next Apply reads it again); the tables of a failed
// iptables-restore transaction are unchanged, but with two tables per
// family, filter may have committed when raw failed. The error says which.
func (s *Syncer) Apply(ctx context.Context, rs *firewall.Ruleset) (Stats, error) {
	var st Stats
	want, err := desiredFamilies("apply", rs)
	if err != nil {
		return st, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The generation before anything: if it is the one the syncer's view
	// was verified at, or both families are read below, and it moves by
	// exactly the transactions written, the view after the Apply is exact.
	g0, genOK := s.generation(ctx)
	exact := genOK && s.verified && g0 == s.verifiedGen
	s.verified = false
	readAll, commits := true, 0
	for _, f := range families {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		cur := s.known[f]
		fresh := cur == nil
		if fresh {
			read, err := s.read(ctx, f, &st)
			if err != nil {
				return st, fmt.Errorf("apply %s: %w", f, err)
			}
			cur = read
		} else {
			readAll = false
		}
		var plans [2]*tablePlan
		var next [2]*tableState
		for i, t := range tableNames {
			plans[i], next[i] = planTable(t, cur[i], want[f][i])
		}
		if s.backend == NFT && (fresh || exact) {
			// Only on a view just read or verified: a stage flushes any
			// chain of that name, which must therefore not exist.
			for i := range plans {
				for _, b := range plans[i].stage(s.stageLimits) {
					n, err := s.restore(ctx, f, [2]*tablePlan{b, {}}, &st)
					if err != nil {
						s.known[f] = nil
						return st, fmt.Errorf("apply %s: load new chains ahead: %w", f, err)
					}
					commits += n
				}
			}
		}
		n, err := s.restore(ctx, f, plans, &st)
		if err != nil {
			s.known[f] = nil
			return st, fmt.Errorf("apply %s: %w", f, err)
		}
		commits += n
		s.known[f] = &next
	}
	if exact || readAll && genOK {
		g1 := g0
		if commits > 0 {
			var ok bool
			if g1, ok = s.generation(ctx); !ok {
				return st, nil
			}
		}
		if g1-g0 == uint32(commits) {
			s.verified, s.verifiedGen = true, g1
		}
	}
	return st, nil
}

// desiredFamilies is desiredTables for both families of rs; op ("apply",
// "check") begins its errors.
func desiredFamilies(op string, rs *firewall.Ruleset) ([2][2]*tableState, error) {
	var want [2][2]*tableState
	if rs == nil {
		return want, fmt.Errorf("%s: no ruleset", op)
	}
	for _, f := range families {
		var err error
		if want[f], err = desiredTables(rsTables(rs, f)); err != nil {
			return want, fmt.Errorf("%s %s ruleset: %w", op, f, err)
		}
	}
	return want, nil
}

// rsTables returns one family's tables of a ruleset.
func rsTables(rs *firewall.Ruleset, f Family) *firewall.Tables {
	if f == IPv6 {
		return &rs.IPv6
	}
	return &rs.IPv4
}

// restore writes the non-empty plans of one family in one iptables-restore
// --noflush process and returns the number of table transactions written.
func (s *Syncer) restore(ctx context.Context, f Family, plans [2]*tablePlan, st *Stats) (int, error) {
	var b []byte
	// sections[i] is the first line of the i-th table written, to tell
	// from iptables-restore's "line N" which table failed.
	type section struct {
		table string
		line  int
	}
	var sections []section
	line := 1
	for _, p := range plans {
		if p.empty() {
			continue
		}
		sections = append(sections, section{p.table, line})
		var n int
		b, n = p.appendTo(b)
		line += n
		st.add(p)
	}
	if len(sections) == 0 {
		return 0, nil
	}
	st.Restores++
	st.Bytes += len(b)
	args := []string{"--noflush"}
	if s.backend == Legacy {
		// Legacy iptables serialises all writers through one lock file
		// (global across network namespaces unless XTABLES_LOCKFILE is set):
		// wait for it rather than fail.
		args = append([]string{"-w"}, args...)
	}
	if _, err := s.exec.Run(ctx, b, s.backend.Command(f, "restore"), args...); err != nil {
		// Name the table that failed and those that committed before it.
		failed := ""
		if n, ok := restoreErrorLine(err); ok {
			for _, sec := range sections {
				if n >= sec.line {
					failed = sec.table
				}
			}
		}
		if failed == "" {
			var names []string
			for _, sec := range sections {
				names = append(names, sec.table)
			}
			return 0, fmt.Errorf("restore %s: %w", strings.Join(names, ", "), err)
		}
		var committed []string
		for _, sec := range sections {
			if sec.table == failed {
				break
			}
			committed = append(committed, sec.table)
		}
		if len(committed) > 0 {
			return 0, fmt.Errorf("restore %s table failed (%s committed before it): %w", failed, strings.Join(committed, ", "), err)
		}
		return 0, fmt.Errorf("restore %s table failed, nothing committed: %w", failed, err)
	}
	return len(sections), nil
}

var errorLineRE = regexp.MustCompile(`(?:Error occurred at line: |line )(\d+)`)

// restoreErrorLine finds the input line iptables-restore blames.
func restoreErrorLine(err error) (int, bool) {
	var ce *dataplane.CommandError
	text := err.Error()
	if errors.As(err, &ce) {
		text = ce.Stderr
	}
	m := errorLineRE.FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	n, err2 := strconv.Atoi(m[1])
	return n, err2 == nil
}

// read runs iptables-save for the raw and filter tables of one family.
func (s *Syncer) read(ctx context.Context, f Family, st *Stats) (*[2]*tableState, error) {
	var out [2]*tableState
	for i, t := range tableNames {
		tables, err := s.save(ctx, f, t)
		if st != nil {
			st.Saves++
			st.Saved = true
		}
		if err != nil {
			return nil, err
		}
		out[i] = tables[t]
	}
	return &out, nil
}

// save reads one table, again when the read failed transiently
// (RetrySave).
func (s *Syncer) save(ctx context.Context, f Family, table string) (map[string]*tableState, error) {
	out, err := RetrySave(ctx, func(ctx context.Context) ([]byte, error) {
		return s.exec.Run(ctx, nil, s.backend.Command(f, "save"), "-t", table)
	})
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", table, err)
	}
	tables, err := parseSave(string(out), table)
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", table, err)
	}
	return tables, nil
}

// Check reads the kernel and reports how moat's part of it differs from rs:
// missing, unexpected or changed owned chains, built-in chains that do not
// start with moat's jumps, a missing canary. An empty result means no drift.
// Check also replaces the syncer's view with what it read, so that an Apply
// that follows repairs exactly the drift without reading again.
//
// With a generation source (iptables-nft) Check reads only when the
// namespace's tables were written since the syncer last read them or wrote
// them itself; otherwise it compares rs with that view, which costs no
// process at all.
func (s *Syncer) Check(ctx context.Context, rs *firewall.Ruleset) ([]string, error) {
	want, err := desiredFamilies("check", rs)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unchanged(ctx) {
		// The generation is read before the tables: a write after it makes
		// the next Check read again, even if this read already saw it.
		g, genOK := s.generation(ctx)
		s.verified = false
		for _, f := range families {
			cur, err := s.read(ctx, f, nil)
			if err != nil {
				s.known[f] = nil
				return nil, fmt.Errorf("check %s: %w", f, err)
			}
			s.known[f] = cur
		}
		s.verified, s.verifiedGen = genOK, g
	}
	var drift []string
	for _, f := range families {
		for i, t := range tableNames {
			p, _ := planTable(t, s.known[f][i], want[f][i])
			for _, d := range p.drift {
				drift = append(drift, f.String()+" "+d)
			}
		}
	}
	return drift, nil
}

// CanaryPresent reports whether both families' canary chains exist and hold
// their rule. It runs `iptables -S moat-canary` per family, which lists one
// chain: cheaper than a save of the table with iptables-nft, which fetches
// only that chain; iptables-legacy still reads the table's blob from the
// kernel, but does not format it. Call Invalidate when it returns false.
func (s *Syncer) CanaryPresent(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unchanged(ctx) && s.hasCanary() {
		return true, nil
	}
	for _, f := range families {
		args := []string{"-t", "filter", "-S", CanaryChain}
		if s.backend == Legacy {
			args = append([]string{"-w"}, args...)
		}
		out, err := s.exec.Run(ctx, nil, s.backend.Command(f, ""), args...)
		if err != nil {
			// Exit status 1 is how iptables says the chain does not exist
			// (iptables-nft 1.8.9 words it "chain ... is incompatible, use
			// 'nft' tool"); anything else is a failure to look.
			var ec interface{ ExitCode() int }
			if errors.As(err, &ec) && ec.ExitCode() == 1 {
				return false, nil
			}
			return false, fmt.Errorf("look for the %s canary: %w", f, err)
		}
		if !strings.Contains(string(out), "-A "+CanaryChain+" "+CanaryRule+"\n") {
			return false, nil
		}
	}
	return true, nil
}

// hasCanary reports whether the syncer's view holds both canaries.
func (s *Syncer) hasCanary() bool {
	for _, f := range families {
		filter := s.known[f][0]
		i, ok := slices.BinarySearchFunc(filter.owned, CanaryChain, func(c firewall.Chain, n string) int { return strings.Compare(c.Name, n) })
		if !ok || !slices.Equal(filter.owned[i].Rules, canaryRules) {
			return false
		}
	}
	return true
}

var zoneRE = regexp.MustCompile(`--comment "?Set zone for ([^" ]+)"? .*-j CT --zone (\d+)`)

// InstalledZones reads the conntrack zone of each port from moat's raw
// chains (Neutron's "Set zone for <port id>" CT rules), so that an agent
// that restarts, or takes over from Neutron, keeps every port's zone.
// Stateless ports' rules (CT --notrack) carry no zone and are not listed.
// Where the two families disagree, IPv4 wins.
func (s *Syncer) InstalledZones(ctx context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	zones := map[string]int{}
	for _, f := range families {
		tables, err := s.save(ctx, f, "raw")
		if err != nil {
			return nil, fmt.Errorf("installed zones %s: %w", f, err)
		}
		for _, c := range tables["raw"].owned {
			for _, r := range c.Rules {
				m := zoneRE.FindStringSubmatch(r)
				if m == nil {
					continue
				}
				zone, err := strconv.Atoi(m[2])
				if err != nil {
					continue
				}
				if _, ok := zones[m[1]]; !ok {
					zones[m[1]] = zone
				}
			}
		}
	}
	return zones, nil
}

// RemoveAll deletes everything moat owns from both families' raw and filter
// tables — its jumps in the built-in chains, its chains, the canary —
// leaving every other rule and chain in place. It reads the kernel first,
// whatever the syncer knew, and forgets its view afterwards.
func (s *Syncer) RemoveAll(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known = [2]*[2]*tableState{}
	s.verified = false
	empty := &tableState{}
	for _, f := range families {
		cur, err := s.read(ctx, f, nil)
		if err != nil {
			return fmt.Errorf("remove %s: %w", f, err)
		}
		var plans [2]*tablePlan
		for i, t := range tableNames {
			plans[i], _ = planTable(t, cur[i], empty)
		}
		if _, err := s.restore(ctx, f, plans, &Stats{}); err != nil {
			return fmt.Errorf("remove %s: %w", f, err)
		}
	}
	return nil
}
