package nftables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/moat-sg/moat/internal/dataplane"
)

// ChainRule is a rule of a chain as the kernel lists it: its origin (the
// comment less the syncer's fingerprint: "sgr <rule id>", "default-drop",
// ...) and its counter, when it has one.
type ChainRule struct {
	Origin         string
	Counted        bool
	Packets, Bytes uint64
}

// ChainCounters lists some chains of table id with their rules' counters:
// `nft -j list chain FAMILY moat CHAIN`, one process a chain, so that a
// port's counters cost the same at 5 ports as at 5,000. A chain that does
// not exist is left out. It takes no lock of the syncer: reading counters
// neither holds up an Apply nor waits for one.
func (s *Syncer) ChainCounters(ctx context.Context, id TableID, chains []string) (map[string][]ChainRule, error) {
	k, ok := s.k.(*nftKernel)
	if !ok {
		return nil, errors.New("counters are read with the nft tool only")
	}
	out := make(map[string][]ChainRule, len(chains))
	for _, c := range chains {
		text, err := k.exec.Run(ctx, nil, "nft", "-j", "list", "chain", string(id.Family), id.Name, c)
		if err != nil {
			var ce *dataplane.CommandError
			if errors.As(err, &ce) && strings.Contains(ce.Stderr, "No such file or directory") {
				continue
			}
			return nil, fmt.Errorf("read counters of %s chain %s: %w", id, c, err)
		}
		rules, err := parseChainCounters(text)
		if err != nil {
			return nil, fmt.Errorf("read counters of %s chain %s: %w", id, c, err)
		}
		out[c] = rules
	}
	return out, nil
}

// parseChainCounters reads `nft -j list chain` output: its rules in order.
func parseChainCounters(data []byte) ([]ChainRule, error) {
	var raw struct {
		Nftables []struct {
			Rule *struct {
				Comment string            `json:"comment"`
				Expr    []json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("bad JSON from nft: %w", err)
	}
	var out []ChainRule
	for _, o := range raw.Nftables {
		if o.Rule == nil {
			continue
		}
		r := ChainRule{Origin: Origin(o.Rule.Comment)}
		for _, e := range o.Rule.Expr {
			var x struct {
				Counter *struct{ Packets, Bytes uint64 } `json:"counter"`
			}
			if json.Unmarshal(e, &x) == nil && x.Counter != nil {
				r.Counted, r.Packets, r.Bytes = true, x.Counter.Packets, x.Counter.Bytes
			}
		}
		out = append(out, r)
	}
	return out, nil
}
