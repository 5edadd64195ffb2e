package agent

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/ipset"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
)

// Previous is another backend that may hold this host's rules from an
// earlier run: the host switched between iptables and nftables. When the
// agent's own backend holds no zones, it takes the ports' conntrack zones
// from the previous one (established flows keep their entries); once its
// own rules are in the kernel, it removes the previous backend's. Until
// then both are in force, the stricter wins: the switch opens no window.
type Previous interface {
	Name() string
	// Present reports whether the backend holds moat's rules.
	Present(ctx context.Context) (bool, error)
	InstalledZones(ctx context.Context) (map[string]int, error)
	// Remove deletes moat's rules (and sets) from the backend, nothing else.
	Remove(ctx context.Context) error
}

// Previous lists the backends a host may be switching from to b: the
// nftables layout for the iptables backends, the iptables variants whose
// tools are installed for nftables.
func (b Backend) Previous(ex dataplane.Exec) []Previous {
	if b != NFTablesLayout {
		if !haveTools("nft") {
			return nil
		}
		return []Previous{nftPrevious{nftables.NewSyncer(ex)}}
	}
	var out []Previous
	for _, v := range iptables.Backends() {
		if haveTools(append(v.Binaries(), "ipset")...) {
			out = append(out, iptablesPrevious{ex: ex, b: v})
		}
	}
	return out
}

func haveTools(tools ...string) bool {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return false
		}
	}
	return true
}

type nftPrevious struct{ s *nftables.Syncer }

func (p nftPrevious) Name() string { return string(NFTablesLayout) }

func (p nftPrevious) Present(ctx context.Context) (bool, error) {
	return p.s.HasChain(ctx, nftables.IPTable, nftrender.ChainCanary)
}

func (p nftPrevious) InstalledZones(ctx context.Context) (map[string]int, error) {
	return nftRules{s: p.s}.InstalledZones(ctx)
}

func (p nftPrevious) Remove(ctx context.Context) error { return p.s.RemoveAll(ctx) }

type iptablesPrevious struct {
	ex dataplane.Exec
	b  iptables.Backend
}

func (p iptablesPrevious) Name() string { return string(p.b) }

// Present looks for moat's canary chain: Neutron-named chains alone could
// be a real Neutron agent's.
func (p iptablesPrevious) Present(ctx context.Context) (bool, error) {
	// No -t: naming a table would instantiate it in iptables-legacy.
	out, err := p.ex.Run(ctx, nil, p.b.Command(iptables.IPv4, "save"))
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.b.Command(iptables.IPv4, "save"), err)
	}
	return bytes.Contains(out, []byte(":"+iptables.CanaryChain+" ")), nil
}

func (p iptablesPrevious) InstalledZones(ctx context.Context) (map[string]int, error) {
	return iptables.NewSyncer(p.ex, p.b).InstalledZones(ctx)
}

func (p iptablesPrevious) Remove(ctx context.Context) error {
	if err := iptables.NewSyncer(p.ex, p.b).RemoveAll(ctx); err != nil {
		return err
	}
	sets := ipset.NewSyncer(p.ex)
	stale, err := sets.Apply(ctx, nil)
	if err != nil {
		return fmt.Errorf("ipsets: %w", err)
	}
	return sets.Destroy(ctx, stale)
}
