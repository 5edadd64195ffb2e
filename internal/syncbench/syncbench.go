// Package syncbench measures the agent's dataplane syncers (internal/
// dataplane/iptables and ipset) against the real tools in scratch network
// namespaces: the syncer phases of `moat bench agent`.
//
// Benchmark harnesses live in packages of their own, next to the code
// they measure but not inside it, so that production packages never
// import the workload generator (internal/firewall/workload) or the
// measuring code: compilebench (the compiler), syncbench (the syncers),
// agentbench (API call to enforced in the kernel) and apibench (the API
// under load). cmd/moat's bench commands only parse flags and print what
// these return; CPU readings come from internal/cputime.
package syncbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/moat-sg/moat/internal/cputime"
	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/ipset"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
	"github.com/moat-sg/moat/internal/scratchns"
)

// families is the order in which the syncer applies and reports them.
var families = []iptables.Family{iptables.IPv4, iptables.IPv6}

// tables are rs's tables of family f.
func tables(rs *firewall.Ruleset, f iptables.Family) *firewall.Tables {
	if f == iptables.IPv6 {
		return &rs.IPv6
	}
	return &rs.IPv4
}

// Options configures Run.
type Options struct {
	Ports    []int              // host sizes, e.g. 1000 and 5000
	Backends []iptables.Backend // default: both
	Repeat   int                // runs per size and backend; medians are reported (default 3)
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

// Row is one measured phase: medians over the runs.
type Row struct {
	Backend iptables.Backend
	Ports   int
	Phase   string
	// Wall is elapsed time; CPU is the user+system time of this process and
	// of the tools it ran (their rusage, kernel work on their behalf
	// included), which is what a shared host pays.
	Wall, CPU, ChildCPU time.Duration
	// Detail says what the phase wrote (chains, restore bytes).
	Detail string
}

// Phases of Run, in the order they are reported.
const (
	PhaseBareRestore = "bare iptables-restore of the full ruleset (reference)"
	PhaseFullApply   = "full Apply into an empty namespace"
	PhaseIPSets      = "ipset Apply, all sets, empty namespace"
	PhaseNoop        = "Apply, nothing changed"
	PhaseOneRule     = "Apply after one rule added to one app group"
	PhaseAddPort     = "Apply after one port added"
	PhaseRestart     = "Apply by a fresh syncer (agent restart, nothing to write)"
	PhaseCheckRead   = "Check reading the tables (after Invalidate)"
	PhaseCheckGen    = "Check with nothing written since (nft: generation unchanged)"
	PhaseCanary      = "CanaryPresent"
)

var benchPhases = []string{PhaseBareRestore, PhaseFullApply, PhaseIPSets, PhaseNoop, PhaseOneRule, PhaseAddPort, PhaseRestart, PhaseCheckRead, PhaseCheckGen, PhaseCanary}

// Run measures the syncer against the real tools in scratch network
// namespaces (root only): for each backend and size, a full Apply of the
// internal/firewall/workload ruleset into an empty namespace next to a bare
// iptables-restore of the same tables (what `moat render` prints), then in
// the applied namespace a one-rule change (one app group, so a tenth of the
// ports), a port added, an Apply with nothing to do, an Apply by a fresh
// syncer, Check (reading, and trusting the nf_tables generation) and
// CanaryPresent. Every run uses fresh namespaces (never two backends in one
// namespace) with their own xtables lock. Rusage of children is process-wide,
// so run it in a process that does nothing else.
func Run(ctx context.Context, opt Options) ([]Row, error) {
	if opt.Repeat <= 0 {
		opt.Repeat = 3
	}
	if len(opt.Backends) == 0 {
		opt.Backends = iptables.Backends()
	}
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var rows []Row
	for _, n := range opt.Ports {
		for _, backend := range opt.Backends {
			samples := map[string][]sample{}
			details := map[string]string{}
			for r := 0; r < opt.Repeat; r++ {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				logf("bench: %s, %d ports, run %d/%d", backend, n, r+1, opt.Repeat)
				if err := benchRun(ctx, backend, n, r, samples, details); err != nil {
					return nil, fmt.Errorf("bench %s %d ports: %w", backend, n, err)
				}
			}
			rows = append(rows, phaseRows(backend, n, benchPhases, samples, details)...)
		}
	}
	return rows, nil
}

// benchRun is one run of every phase for one backend and size.
func benchRun(ctx context.Context, backend iptables.Backend, n, r int, samples map[string][]sample, details map[string]string) error {
	b := workload.NewBench(n)
	c := firewall.NewCompiler()
	rs, err := c.Compile(b.State)
	if err != nil {
		return err
	}
	b.State.Zones = rs.ZoneAssignments
	add := func(phase string, s sample) { samples[phase] = append(samples[phase], s) }

	bareNS, err := scratchns.New("moat-bench")
	if err != nil {
		return err
	}
	defer func() { _ = bareNS.Delete() }()
	bare := bareNS.Netns
	syncNS, err := scratchns.New("moat-bench")
	if err != nil {
		return err
	}
	defer func() { _ = syncNS.Delete() }()
	ns := syncNS.Netns

	// The reference: iptables-restore (without --noflush) of both tables of
	// both families, the way `moat render` prints them.
	var input [2]string
	for _, f := range families {
		var sb strings.Builder
		ts := tables(rs, f)
		if err := firewall.WriteSave(&sb, &ts.Filter, &ts.Raw); err != nil {
			return err
		}
		input[f] = sb.String()
	}
	if err := loadSets(ctx, bare, rs); err != nil {
		return err
	}
	bareRestore := func() error {
		for _, f := range families {
			args := []string{}
			if backend == iptables.Legacy {
				args = append(args, "-w")
			}
			if _, err := bare.Run(ctx, []byte(input[f]), backend.Command(f, "restore"), args...); err != nil {
				return err
			}
		}
		return nil
	}
	details[PhaseBareRestore] = fmt.Sprintf("%d + %d rules, %s", rs.IPv4.Filter.RuleCount()+rs.IPv4.Raw.RuleCount(),
		rs.IPv6.Filter.RuleCount()+rs.IPv6.Raw.RuleCount(), kb(len(input[0])+len(input[1])))

	sets := ipset.NewSyncer(ns)
	s := iptables.NewSyncer(ns, backend)
	var st iptables.Stats
	fullApply := func() (err error) { st, err = s.Apply(ctx, rs); return err }
	// Alternate which goes first, so that a trend in the machine's load
	// does not favour one side.
	if r%2 == 0 {
		sm, err := measure(bareRestore)
		if err != nil {
			return fmt.Errorf("bare restore: %w", err)
		}
		add(PhaseBareRestore, sm)
	}
	sm, err := measure(func() error { _, err := sets.Apply(ctx, rs.IPSets); return err })
	if err != nil {
		return err
	}
	add(PhaseIPSets, sm)
	details[PhaseIPSets] = fmt.Sprintf("%d sets", len(rs.IPSets))
	if sm, err = measure(fullApply); err != nil {
		return fmt.Errorf("full apply: %w", err)
	}
	add(PhaseFullApply, sm)
	details[PhaseFullApply] = fmt.Sprintf("%d chains, %s, %d saves + %d restores", st.ChainsWritten(), kb(st.Bytes), st.Saves, st.Restores)
	if r%2 == 1 {
		sm, err := measure(bareRestore)
		if err != nil {
			return fmt.Errorf("bare restore: %w", err)
		}
		add(PhaseBareRestore, sm)
	}

	if sm, err = measure(fullApply); err != nil {
		return err
	}
	if st.Restores != 0 || st.Saves != 0 {
		return fmt.Errorf("apply without change did work: %+v", st)
	}
	add(PhaseNoop, sm)

	b.AddRule(b.Apps[r%len(b.Apps)], 10000+r)
	rs2, err := c.Compile(b.State)
	if err != nil {
		return err
	}
	if sm, err = measure(func() (err error) { st, err = s.Apply(ctx, rs2); return err }); err != nil {
		return fmt.Errorf("one-rule change: %w", err)
	}
	add(PhaseOneRule, sm)
	details[PhaseOneRule] = fmt.Sprintf("%d chains patched, %d rewritten, %d rules, %s", st.ChainsPatched, st.ChainsRewritten, st.RulesWritten, kb(st.Bytes))

	b.State.Ports = append(b.State.Ports, firewall.Port{
		ID: fmt.Sprintf("ffffffff-0000-4000-8000-%012d", r), MAC: fmt.Sprintf("fa:16:3f:00:00:%02x", r%256),
		FixedIPs: []string{fmt.Sprintf("10.250.0.%d", 1+r%250)}, SecurityGroups: []string{b.Common, b.Apps[0]}, DeviceOwner: "compute:nova",
	})
	rs3, err := c.Compile(b.State)
	if err != nil {
		return err
	}
	if _, err := sets.Apply(ctx, rs3.IPSets); err != nil {
		return err
	}
	if sm, err = measure(func() (err error) { st, err = s.Apply(ctx, rs3); return err }); err != nil {
		return fmt.Errorf("port added: %w", err)
	}
	add(PhaseAddPort, sm)
	details[PhaseAddPort] = fmt.Sprintf("%d chains created, %d patched, %d rewritten, %s", st.ChainsCreated, st.ChainsPatched, st.ChainsRewritten, kb(st.Bytes))

	s2 := iptables.NewSyncer(ns, backend)
	if sm, err = measure(func() (err error) { st, err = s2.Apply(ctx, rs3); return err }); err != nil {
		return err
	}
	if st.Restores != 0 {
		return fmt.Errorf("a fresh syncer wrote to a synced namespace: %+v", st)
	}
	add(PhaseRestart, sm)
	details[PhaseRestart] = fmt.Sprintf("%d saves", st.Saves)

	s.Invalidate()
	return checkPhases(add, func() ([]string, error) { return s.Check(ctx, rs3) },
		func() (bool, error) { return s.CanaryPresent(ctx) }, PhaseCheckRead, PhaseCheckGen, PhaseCanary)
}

// checkPhases measures, on a syncer that was just invalidated, a drift
// check that reads the kernel (phaseRead), a second one that may trust the
// nf_tables generation (phaseAgain) and the canary lookup: right after an
// apply there must be no drift and the canary must be there.
func checkPhases(add func(string, sample), check func() ([]string, error), canary func() (bool, error), phaseRead, phaseAgain, phaseCanary string) error {
	for i, phase := range []string{phaseRead, phaseAgain} {
		var drift []string
		sm, err := measure(func() (err error) { drift, err = check(); return err })
		if err != nil {
			return err
		}
		if len(drift) > 0 {
			return fmt.Errorf("drift right after %s: %q", []string{"apply", "check"}[i], drift[:min(len(drift), 5)])
		}
		add(phase, sm)
	}
	var ok bool
	sm, err := measure(func() (err error) { ok, err = canary(); return err })
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("canary missing after apply")
	}
	add(phaseCanary, sm)
	return nil
}

func loadSets(ctx context.Context, ex dataplane.Exec, rs *firewall.Ruleset) error {
	var b strings.Builder
	if err := firewall.WriteIPSetSave(&b, rs.IPSets); err != nil {
		return err
	}
	_, err := ex.Run(ctx, []byte(b.String()), "ipset", "-exist", "restore")
	return err
}

func kb(n int) string { return fmt.Sprintf("%.0f kB", float64(n)/1000) }

type sample struct{ wall, self, child time.Duration }

// measure runs f and returns its wall time and the CPU time of this process
// and of the children it waited for meanwhile. (getrusage cannot fail with
// these arguments: a reading error would only zero the sample.)
func measure(f func() error) (sample, error) {
	s0, _ := cputime.Self()
	c0, _ := cputime.Children()
	start := time.Now()
	err := f()
	wall := time.Since(start)
	s1, _ := cputime.Self()
	c1, _ := cputime.Children()
	return sample{wall: wall, self: s1 - s0, child: c1 - c0}, err
}

// phaseRows are the medians of each phase's samples, in phases' order
// (phases without samples left out).
func phaseRows(backend iptables.Backend, ports int, phases []string, samples map[string][]sample, details map[string]string) []Row {
	var rows []Row
	for _, phase := range phases {
		ss := samples[phase]
		if len(ss) == 0 {
			continue
		}
		rows = append(rows, Row{
			Backend: backend, Ports: ports, Phase: phase,
			Wall:     median(ss, func(s sample) time.Duration { return s.wall }),
			CPU:      median(ss, func(s sample) time.Duration { return s.self + s.child }),
			ChildCPU: median(ss, func(s sample) time.Duration { return s.child }),
			Detail:   details[phase],
		})
	}
	return rows
}

func median(ss []sample, get func(sample) time.Duration) time.Duration {
	v := make([]time.Duration, len(ss))
	for i, s := range ss {
		v[i] = get(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// WriteTable prints rows as a Markdown table, with the full Apply
// relative to the bare restore of the same size and backend.
func WriteTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| ports | backend | phase | wall ms | CPU ms (of which tools) | what |\n|---|---|---|---|---|---|\n")
	ref := map[string]Row{}
	for _, r := range rows {
		ref[fmt.Sprint(r.Ports, r.Backend, r.Phase)] = r
	}
	for _, r := range rows {
		what := r.Detail
		if bare, ok := ref[fmt.Sprint(r.Ports, r.Backend, Reference[r.Phase])]; ok && bare.Wall > 0 && bare.CPU > 0 {
			what += fmt.Sprintf("; %.2f× / %.2f× the bare reference", float64(r.Wall)/float64(bare.Wall), float64(r.CPU)/float64(bare.CPU))
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s (%s) | %s |\n", r.Ports, r.Backend, r.Phase, ms(r.Wall), ms(r.CPU), ms(r.ChildCPU), what)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// Line is a Row as `moat bench agent` prints it, one JSON object per line
// (keys in alphabetical order, as the command has always printed them).
type Line struct {
	Backend    iptables.Backend `json:"backend"`
	Bench      string           `json:"bench"` // "syncer"
	ChildCPUms float64          `json:"child_cpu_ms"`
	CPUms      float64          `json:"cpu_ms"`
	Detail     string           `json:"detail"`
	Phase      string           `json:"phase"`
	Ports      int              `json:"ports"`
	Wallms     float64          `json:"wall_ms"`
}

// Line returns r as a JSON line.
func (r Row) Line() Line {
	return Line{Backend: r.Backend, Bench: "syncer", ChildCPUms: millis(r.ChildCPU), CPUms: millis(r.CPU),
		Detail: r.Detail, Phase: r.Phase, Ports: r.Ports, Wallms: millis(r.Wall)}
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
