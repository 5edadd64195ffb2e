package syncbench

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/nftrender"
	"github.com/moat-sg/moat/internal/firewall/workload"
	"github.com/moat-sg/moat/internal/scratchns"
)

// NFTables is the nftables backend's name in rows (the agent's name).
const NFTables = iptables.Backend("nftables")

// Phases of RunNFT: each of the syncer's transactions is also run by a bare
// `nft -f` on a second namespace that holds the same state, so that every
// Apply is compared with the kernel's own cost of the same change.
const (
	PhaseBareNFT      = "bare nft -f of the full ruleset (reference)"
	PhaseBareNFTOne   = "bare nft -f of the one-rule transaction (reference)"
	PhaseBareNFTAdd   = "bare nft -f of the port-added transaction (reference)"
	PhaseNFTCheckGen  = "Check with nothing written since (generation unchanged)"
	PhaseNFTCanaryGen = "CanaryPresent (generation unchanged)"
	PhaseNFTRestartRd = "Apply by a fresh syncer (agent restart: reads its tables, writes nothing)"
	PhaseNFTFullApply = PhaseFullApply + " (render + plan + one nft -f)"
	PhaseNFTOneRule   = PhaseOneRule + " (render + plan + one nft -f)"
	PhaseNFTAddPort   = PhaseAddPort + " (render + plan + one nft -f)"
	PhaseNFTNoop      = PhaseNoop + " (no process)"
)

var nftPhases = []string{PhaseBareNFT, PhaseNFTFullApply, PhaseNFTNoop, PhaseBareNFTOne, PhaseNFTOneRule,
	PhaseBareNFTAdd, PhaseNFTAddPort, PhaseNFTRestartRd, PhaseCheckRead, PhaseNFTCheckGen, PhaseNFTCanaryGen}

// Reference pairs each measured phase with its bare reference, for ratios.
var Reference = map[string]string{
	PhaseFullApply: PhaseBareRestore, PhaseNFTFullApply: PhaseBareNFT,
	PhaseNFTOneRule: PhaseBareNFTOne, PhaseNFTAddPort: PhaseBareNFTAdd,
}

// RunNFT measures the nftables syncer as the agent drives it (nftrender,
// then one transaction) on the compiler benchmark's workload, in scratch
// namespaces: a full Apply into an empty namespace, nothing changed, one
// rule added to one app group, a port added, a fresh syncer, Check and the
// canary. Every transaction the syncer commits is recorded and replayed
// with a bare `nft -f` into a second namespace that holds the same state;
// medians over opt.Repeat runs.
func RunNFT(ctx context.Context, opt Options) ([]Row, error) {
	if opt.Repeat <= 0 {
		opt.Repeat = 3
	}
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var rows []Row
	for _, n := range opt.Ports {
		samples := map[string][]sample{}
		details := map[string]string{}
		for r := 0; r < opt.Repeat; r++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			logf("bench: nftables, %d ports, run %d/%d", n, r+1, opt.Repeat)
			if err := nftRun(ctx, n, r, samples, details); err != nil {
				return nil, fmt.Errorf("bench nftables %d ports: %w", n, err)
			}
		}
		rows = append(rows, phaseRows(NFTables, n, nftPhases, samples, details)...)
	}
	return rows, nil
}

// recorder is an Exec that keeps the text of the last `nft -f -`.
type recorder struct {
	dataplane.Exec
	mu   sync.Mutex
	last []byte
}

func (r *recorder) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if name == "nft" && slices.Equal(args, []string{"-f", "-"}) {
		r.mu.Lock()
		r.last = slices.Clone(stdin)
		r.mu.Unlock()
	}
	return r.Exec.Run(ctx, stdin, name, args...)
}

func (r *recorder) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.last
	r.last = nil
	return t
}

func nftRun(ctx context.Context, n, r int, samples map[string][]sample, details map[string]string) error {
	b := workload.NewBench(n)
	c := firewall.NewCompiler()
	rs, err := c.Compile(b.State)
	if err != nil {
		return err
	}
	b.State.Zones = rs.ZoneAssignments
	add := func(phase string, s sample) { samples[phase] = append(samples[phase], s) }

	bareNS, err := scratchns.New("moat-nbench")
	if err != nil {
		return err
	}
	defer func() { _ = bareNS.Delete() }()
	syncNS, err := scratchns.New("moat-nbench")
	if err != nil {
		return err
	}
	defer func() { _ = syncNS.Delete() }()
	bare := bareNS.Netns

	newSyncer := func() (*nftables.Syncer, *recorder) {
		rec := &recorder{Exec: syncNS.Netns}
		s := nftables.NewSyncer(rec)
		s.SetGeneration(iptables.NFTGeneration(syncNS.Netns.Name))
		return s, rec
	}
	s, rec := newSyncer()
	rd := nftrender.NewRenderer()
	var st nftables.Stats
	apply := func(rs *firewall.Ruleset) func() error {
		return func() error {
			out, err := rd.Render(rs)
			if err != nil {
				return err
			}
			st, err = s.Apply(ctx, out)
			return err
		}
	}
	bareLoad := func(text []byte) func() error {
		return func() error { _, err := bare.Run(ctx, text, "nft", "-f", "-"); return err }
	}
	// pair measures the syncer's Apply and then a bare replay of the
	// transaction it committed (the bare side needs the text, so it
	// always goes second, right after).
	pair := func(phase, barePhase string, f func() error) error {
		sm, err := measure(f)
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
		text := rec.take()
		if text == nil {
			return fmt.Errorf("%s: the syncer committed nothing", phase)
		}
		bm, err := measure(bareLoad(text))
		if err != nil {
			return fmt.Errorf("%s: %w", barePhase, err)
		}
		add(phase, sm)
		add(barePhase, bm)
		details[phase] = fmt.Sprintf("%d commands, %s; chains +%d ~%d -%d, %d rules, elements +%d -%d",
			st.Commands, kb(st.Bytes), st.ChainsCreated, st.ChainsRewritten, st.ChainsDeleted, st.RulesWritten, st.ElementsAdded, st.ElementsDeleted)
		details[barePhase] = kb(len(text))
		return nil
	}

	if err := pair(PhaseNFTFullApply, PhaseBareNFT, apply(rs)); err != nil {
		return err
	}
	sm, err := measure(apply(rs))
	if err != nil {
		return err
	}
	if st.Commits != 0 || st.Read {
		return fmt.Errorf("apply without change did work: %+v", st)
	}
	add(PhaseNFTNoop, sm)

	b.AddRule(b.Apps[r%len(b.Apps)], 10000+r)
	rs2, err := c.Compile(b.State)
	if err != nil {
		return err
	}
	if err := pair(PhaseNFTOneRule, PhaseBareNFTOne, apply(rs2)); err != nil {
		return err
	}

	b.State.Ports = append(b.State.Ports, firewall.Port{
		ID: fmt.Sprintf("ffffffff-0000-4000-8000-%012d", r), MAC: fmt.Sprintf("fa:16:3f:00:00:%02x", r%256),
		FixedIPs: []string{fmt.Sprintf("10.250.0.%d", 1+r%250)}, SecurityGroups: []string{b.Common, b.Apps[0]}, DeviceOwner: "compute:nova",
	})
	rs3, err := c.Compile(b.State)
	if err != nil {
		return err
	}
	if err := pair(PhaseNFTAddPort, PhaseBareNFTAdd, apply(rs3)); err != nil {
		return err
	}
	out3, err := rd.Render(rs3)
	if err != nil {
		return err
	}

	s2, _ := newSyncer()
	if sm, err = measure(func() (err error) { st, err = s2.Apply(ctx, out3); return err }); err != nil {
		return err
	}
	if st.Commits != 0 {
		return fmt.Errorf("a fresh syncer wrote to a synced namespace: %+v", st)
	}
	add(PhaseNFTRestartRd, sm)
	details[PhaseNFTRestartRd] = fmt.Sprintf("%d listings", st.Reads)

	s.Invalidate()
	if err := checkPhases(add, func() ([]string, error) { return s.Check(ctx, out3) },
		func() (bool, error) { return s.HasChain(ctx, nftables.IPTable, nftrender.ChainCanary) },
		PhaseCheckRead, PhaseNFTCheckGen, PhaseNFTCanaryGen); err != nil {
		return err
	}

	// The bare namespace must now hold what the syncer's does: the
	// replayed transactions were the same.
	want, err := syncNS.Netns.Run(ctx, nil, "nft", "list", "ruleset")
	if err != nil {
		return err
	}
	got, err := bare.Run(ctx, nil, "nft", "list", "ruleset")
	if err != nil {
		return err
	}
	if string(got) != string(want) {
		return fmt.Errorf("the bare replay diverged from the syncer's namespace (%d vs %d bytes)", len(got), len(want))
	}
	return nil
}
