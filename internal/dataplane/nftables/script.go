package nftables

import (
	"context"
	"fmt"
	"slices"
)

// Script is the `nft -f` input that loads rs into tables that do not
// exist yet, as a first Apply writes it: for `moat render` and golden
// tests. It checks rs as Apply does.
func Script(rs *Ruleset) ([]byte, error) {
	var owned []TableID
	if rs != nil {
		for _, t := range rs.Tables {
			if t != nil && !slices.Contains(owned, t.ID) {
				owned = append(owned, t.ID)
			}
		}
	}
	slices.SortFunc(owned, TableID.compare)
	want, err := compile(rs, owned)
	if err != nil {
		return nil, fmt.Errorf("script: %w", err)
	}
	p := &plan{next: map[TableID]*tableState{}}
	for _, id := range owned {
		fullLoad(p, want[id])
	}
	return p.text(), nil
}

// CheckName reports whether name can be a chain, set or map name (nft
// has no quoting for object names, see checkName); kind names the object
// in the error.
func CheckName(kind, name string) error { return checkName(kind, name) }

// Elements returns the elements of one set or map of an owned table as
// the syncer knows them (key → value, "" for a set; both rendered as nft
// lists them: interface names quoted, marks in hex, verdicts as "jump
// chain"), reading the tables first when Apply would. A table or set
// that does not exist has none.
func (s *Syncer) Elements(ctx context.Context, table TableID, set string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, genOK := s.k.generation(ctx)
	if !s.fresh(g, genOK) {
		if err := s.readLocked(ctx, g, genOK, nil); err != nil {
			return nil, fmt.Errorf("elements of %s %s: %w", table, set, err)
		}
	}
	out := map[string]string{}
	st := s.known[table]
	if st == nil {
		return out, nil
	}
	if ss := st.sets[set]; ss != nil {
		for k, v := range ss.elems {
			out[k] = v
		}
	}
	return out, nil
}

// HasChain reports whether an owned table holds a chain, as Elements
// knows it.
func (s *Syncer) HasChain(ctx context.Context, table TableID, chain string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, genOK := s.k.generation(ctx)
	if !s.fresh(g, genOK) {
		if err := s.readLocked(ctx, g, genOK, nil); err != nil {
			return false, fmt.Errorf("chain %s %s: %w", table, chain, err)
		}
	}
	st := s.known[table]
	return st != nil && st.chains[chain] != nil, nil
}
