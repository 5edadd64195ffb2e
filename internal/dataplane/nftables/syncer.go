package nftables

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
)

// kernel is where the syncer's transactions go and where it reads tables
// back: nft in a network namespace, or an in-memory fake in tests.
type kernel interface {
	// commit runs one transaction; on error nothing of it is applied.
	commit(ctx context.Context, p *plan) error
	// read lists the given tables; a table that does not exist maps to nil.
	read(ctx context.Context, ids []TableID) (map[TableID]*tableState, error)
	// generation is the namespace's nf_tables generation; ok is false
	// when there is no source or it cannot be read.
	generation(ctx context.Context) (gen uint32, ok bool)
	// hasGeneration reports whether there is a source at all.
	hasGeneration() bool
}

// nftKernel runs the nft tool through a dataplane.Exec (and so in the
// namespace the Exec runs in: knftables only runs nft in its own).
type nftKernel struct {
	exec dataplane.Exec
	gen  iptables.GenerationFunc
}

func (k *nftKernel) commit(ctx context.Context, p *plan) error {
	text := p.text()
	if _, err := k.exec.Run(ctx, text, "nft", "-f", "-"); err != nil {
		return commitError(p, err)
	}
	return nil
}

var nftLineRE = regexp.MustCompile(`(?m)^(?:/dev/stdin|-):(\d+):`)

// commitError names the command nft refused (nft prints "-:LINE:COL:
// Error: ..." for standard input).
func commitError(p *plan, err error) error {
	var ce *dataplane.CommandError
	text := err.Error()
	if errors.As(err, &ce) {
		text = ce.Stderr
	}
	if m := nftLineRE.FindStringSubmatch(text); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			if what := p.describe(n); what != "" {
				return fmt.Errorf("nft refused the transaction (%d commands, nothing applied) at line %d, %s: %w", len(p.ops), n, what, err)
			}
		}
	}
	return fmt.Errorf("nft refused the transaction (%d commands, nothing applied): %w", len(p.ops), err)
}

func (k *nftKernel) read(ctx context.Context, ids []TableID) (map[TableID]*tableState, error) {
	out, err := k.exec.Run(ctx, nil, "nft", "-j", "list", "tables")
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	present, err := parseTableNames(out)
	if err != nil {
		return nil, err
	}
	states := map[TableID]*tableState{}
	for _, id := range ids {
		if !present[id] {
			states[id] = nil
			continue
		}
		out, err := k.exec.Run(ctx, nil, "nft", "-j", "list", "table", string(id.Family), id.Name)
		if err != nil {
			return nil, fmt.Errorf("list table %s: %w", id, err)
		}
		st, err := parseTable(id, out)
		if err != nil {
			return nil, err
		}
		states[id] = st
	}
	return states, nil
}

func (k *nftKernel) generation(ctx context.Context) (uint32, bool) {
	if k.gen == nil {
		return 0, false
	}
	g, err := k.gen(ctx)
	return g, err == nil
}

func (k *nftKernel) hasGeneration() bool { return k.gen != nil }

// Syncer keeps the tables it owns (by default moat's three) equal to the
// Rulesets it is given. It is safe for concurrent use; calls are
// serialised.
type Syncer struct {
	k     kernel
	owned []TableID
	cache chainCache

	mu sync.Mutex
	// known is what each owned table holds (nil entry: it does not
	// exist), or nil when the syncer does not know and must read.
	known map[TableID]*tableState
	// verified says known is exactly the kernel's state at generation
	// verifiedGen: read then, or written by the syncer with no other
	// transaction in between.
	verified    bool
	verifiedGen uint32
}

// NewSyncer returns a syncer for the given tables (moat's three when none
// are given) that runs nft through exec. With a dataplane.Host or
// dataplane.Netns it reads the namespace's nf_tables generation to detect
// other writers; with another Exec it trusts what it committed.
func NewSyncer(exec dataplane.Exec, tables ...TableID) *Syncer {
	k := &nftKernel{exec: exec}
	switch e := exec.(type) {
	case dataplane.Host:
		k.gen = iptables.NFTGeneration("")
	case dataplane.Netns:
		k.gen = iptables.NFTGeneration(e.Name)
	}
	return newSyncer(k, tables)
}

func newSyncer(k kernel, tables []TableID) *Syncer {
	if len(tables) == 0 {
		tables = MoatTables()
	}
	owned := slices.Clone(tables)
	slices.SortFunc(owned, TableID.compare)
	owned = slices.Compact(owned)
	return &Syncer{k: k, owned: owned}
}

// SetGeneration replaces the generation source (nil: none).
func (s *Syncer) SetGeneration(g iptables.GenerationFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.k.(*nftKernel); ok {
		k.gen = g
	}
	s.verified = false
}

// Tables are the tables the syncer owns.
func (s *Syncer) Tables() []TableID { return slices.Clone(s.owned) }

// Stats describes the work one Apply did.
type Stats struct {
	// Read is set when the syncer listed its tables first: the first
	// Apply, after Invalidate or a failure, and when the generation moved
	// because another process committed. Reads counts the listings
	// asked for (the table names, then each owned table).
	Read  bool
	Reads int
	// Drift lists how the tables differed from what the syncer had
	// committed, when a moved generation made it read them.
	Drift []string
	// Commits is the number of transactions (0 or 1).
	Commits int
	// TablesLoaded counts tables replaced whole (first load, or a table
	// the syncer could not diff); TablesDeleted tables no longer wanted.
	TablesLoaded, TablesDeleted int
	// Chains created, flushed and refilled, deleted; rules written.
	ChainsCreated, ChainsRewritten, ChainsDeleted, RulesWritten int
	SetsCreated, SetsDeleted                                    int
	ElementsAdded, ElementsDeleted                              int
	// Commands and Bytes are the transaction's size.
	Commands, Bytes int
}

// Invalidate makes the next Apply read the tables first.
func (s *Syncer) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known, s.verified = nil, false
}

// fresh reports whether known can be used without reading: the syncer
// knows the tables and, with a generation source, nothing was committed
// in the namespace since it last verified them.
func (s *Syncer) fresh(g uint32, genOK bool) bool {
	if s.known == nil {
		return false
	}
	if !s.k.hasGeneration() {
		return true
	}
	return genOK && s.verified && g == s.verifiedGen
}

// Apply makes the owned tables hold rs, in one nft transaction that holds
// only the difference to what the syncer knows the kernel holds. It reads
// the tables (`nft -j list table`, per owned table) only when it does not
// know them or the generation says someone else committed since it last
// did; an unchanged rs on an untouched namespace costs no process.
//
// On error nothing of the transaction is applied (nft transactions are
// atomic), the syncer forgets what it knew, and the next Apply reads.
func (s *Syncer) Apply(ctx context.Context, rs *Ruleset) (Stats, error) {
	var st Stats
	want, err := compileCached(rs, s.owned, &s.cache)
	if err != nil {
		return st, fmt.Errorf("apply: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g0, genOK := s.k.generation(ctx)
	if !s.fresh(g0, genOK) {
		before := s.known
		if err := s.readLocked(ctx, g0, genOK, &st); err != nil {
			return st, fmt.Errorf("apply: %w", err)
		}
		if before != nil {
			st.Drift = compareKnown(s.owned, before, s.known)
		}
	}
	exact := genOK && s.verified && g0 == s.verifiedGen
	p := planAll(s.owned, s.known, want)
	st.add(p)
	if p.empty() {
		return st, nil
	}
	s.verified = false
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.Commits++
	if err := s.k.commit(ctx, p); err != nil {
		s.known = nil
		return st, fmt.Errorf("apply: %w", err)
	}
	s.known = p.next
	// One transaction moves the generation by one: if that is all that
	// happened since the state was exact, it still is.
	if g1, ok := s.k.generation(ctx); ok && exact && g1 == g0+1 {
		s.verified, s.verifiedGen = true, g1
	}
	return st, nil
}

// readLocked lists the owned tables; g is the generation read before.
func (s *Syncer) readLocked(ctx context.Context, g uint32, genOK bool, st *Stats) error {
	s.known, s.verified = nil, false
	known, err := s.k.read(ctx, s.owned)
	if st != nil {
		st.Read = true
		st.Reads += 1 + len(s.owned)
	}
	if err != nil {
		return err
	}
	s.known = known
	s.verified, s.verifiedGen = genOK, g
	return nil
}

func (st *Stats) add(p *plan) {
	ps := p.stats
	st.TablesLoaded += ps.TablesLoaded
	st.TablesDeleted += ps.TablesDeleted
	st.ChainsCreated += ps.ChainsCreated
	st.ChainsRewritten += ps.ChainsRewritten
	st.ChainsDeleted += ps.ChainsDeleted
	st.RulesWritten += ps.RulesWritten
	st.SetsCreated += ps.SetsCreated
	st.SetsDeleted += ps.SetsDeleted
	st.ElementsAdded += ps.ElementsAdded
	st.ElementsDeleted += ps.ElementsDeleted
	st.Commands += len(p.ops)
	if !p.empty() {
		st.Bytes += len(p.text())
	}
}

// Check reports how the owned tables differ from rs, without writing.
// It reads the tables only when Apply would (the generation moved, or
// the syncer does not know them); otherwise it compares rs with what the
// syncer committed, which costs no process. An empty result means the
// kernel holds rs.
func (s *Syncer) Check(ctx context.Context, rs *Ruleset) ([]string, error) {
	want, err := compileCached(rs, s.owned, &s.cache)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, genOK := s.k.generation(ctx)
	if !s.fresh(g, genOK) {
		if err := s.readLocked(ctx, g, genOK, nil); err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
	}
	return planAll(s.owned, s.known, want).drift, nil
}

// RemoveAll deletes the owned tables (those that exist) in one
// transaction, touching nothing else.
func (s *Syncer) RemoveAll(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known, s.verified = nil, false
	if err := s.k.commit(ctx, removeAll(s.owned)); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}
