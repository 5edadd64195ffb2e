package iptables

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/hybrid"
)

// ChainCounters reads the rules of some chains of family f's filter table
// with their counters: `iptables -w 2 -t filter -v -S CHAIN`, one process
// a chain, so that a port's counters cost the same at 5 ports as at 5,000
// (with iptables-legacy the kernel still copies the whole table to each
// process). A chain that does not exist is left out of the result.
//
// It does not take the syncer's lock: a counters read must never hold up
// an Apply, nor wait for one. -w 2 bounds the wait for the xtables lock.
func (s *Syncer) ChainCounters(ctx context.Context, f Family, chains []string) (map[string][]hybrid.ListedRule, error) {
	out := make(map[string][]hybrid.ListedRule, len(chains))
	for _, c := range chains {
		text, err := s.exec.Run(ctx, nil, s.backend.Command(f, ""), "-w", "2", "-t", "filter", "-v", "-S", c)
		if err != nil {
			if noChain(err, c) {
				continue
			}
			return nil, fmt.Errorf("read counters of %s chain %s: %w", f, c, err)
		}
		rules, err := hybrid.ReadListRules(string(text))
		if err != nil {
			return nil, fmt.Errorf("read counters of %s chain %s: %w", f, c, err)
		}
		out[c] = rules
	}
	return out, nil
}

// noChain reports whether a command on chain failed because the chain does
// not exist. iptables-legacy says "No chain/target/match by that name";
// iptables-nft 1.8.9 says the chain "is incompatible, use 'nft' tool"
// (which it also says of a chain nft made that it cannot read: no port
// chain of the layout is one).
func noChain(err error, chain string) bool {
	var ce *dataplane.CommandError
	return errors.As(err, &ce) && (strings.Contains(ce.Stderr, "No chain/target/match by that name") ||
		strings.Contains(ce.Stderr, "chain `"+chain+"' in table `filter' is incompatible"))
}
