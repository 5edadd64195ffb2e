package trace_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/workload"
	"github.com/moat-sg/moat/internal/trace"
)

// The rulesets of a 5,000-port host: the lab's generator
// (shared/reference/lab/gen_rules.py, Neutron's layout, 125,060 rules,
// the traced port last, the worst case for the linear dispatch chains)
// and moat's own compiler on the Neutron benchmark workload.

const genRules = "../../../shared/reference/lab/gen_rules.py"

var labRules = sync.OnceValues(func() (string, error) {
	if _, err := os.Stat(genRules); err != nil {
		return "", err
	}
	out, err := exec.Command("/usr/bin/python3", genRules, "iptables", "--synthetic", "5000").Output()
	return string(out), err
})

// labSets holds the remote-group set gen_rules.py's rules name.
const labSets = "create NIPv4a1b2c3d4-e5f6-4a7b-8c9d- hash:net family inet hashsize 1024 maxelem 65536\nadd NIPv4a1b2c3d4-e5f6-4a7b-8c9d- 192.168.1.13\n"

var moatRules = sync.OnceValues(func() ([2]string, error) {
	rs, err := firewall.Compile(workload.NewBench(5000).State)
	if err != nil {
		return [2]string{}, err
	}
	var b, s bytes.Buffer
	if err = firewall.WriteSave(&b, &rs.IPv4.Raw, &rs.IPv4.Filter); err != nil {
		return [2]string{}, err
	}
	err = firewall.WriteIPSetSave(&s, rs.IPSets)
	return [2]string{b.String(), s.String()}, err
})

func labHost(tb testing.TB) (string, trace.Query) {
	rules, err := labRules()
	if err != nil {
		// Benchmarks only run with -bench, never in CI, which must not
		// use anything outside the project.
		tb.Skipf("benchmark input outside the project: the reference lab's gen_rules.py (%s): %v", genRules, err)
	}
	return rules, trace.Query{Port: "5f2b7e1d-9a", Direction: trace.Ingress, Protocol: "4", Src: "192.168.1.12"}
}

func load(tb testing.TB, rules, sets string) *trace.Host {
	v4, err := trace.ParseSaveString(rules, false)
	if err != nil {
		tb.Fatal(err)
	}
	h := &trace.Host{IPv4: v4}
	if sets != "" {
		if h.Sets, err = trace.ParseIPSets(strings.NewReader(sets)); err != nil {
			tb.Fatal(err)
		}
	}
	return h
}

// BenchmarkTraceOne is what moat trace does for one packet: parse the
// whole ruleset, then trace.
func BenchmarkTraceOne(b *testing.B) {
	for _, w := range []string{"lab", "moat"} {
		b.Run("rules="+w, func(b *testing.B) {
			rules, sets, q := benchInput(b, w)
			b.SetBytes(int64(len(rules)))
			for b.Loop() {
				h := load(b, rules, sets)
				res, err := h.Trace(q)
				if err != nil || res.Verdict != "DROP" {
					b.Fatal(err, res)
				}
			}
		})
	}
}

// BenchmarkTraceBatch is moat trace --packets: the ruleset is parsed
// once, then packets to and from ports all over the host are traced (one
// op is one packet).
func BenchmarkTraceBatch(b *testing.B) {
	for _, w := range []string{"lab", "moat"} {
		b.Run("rules="+w, func(b *testing.B) {
			rules, sets, q := benchInput(b, w)
			h := load(b, rules, sets)
			taps := h.IPv4.Taps()
			qs := make([]trace.Query, 0, 1000)
			for i := 0; i < 1000; i++ {
				x := q
				x.Port = ""
				x.Tap = taps[(i*7919)%len(taps)]
				switch i % 4 {
				case 1:
					x.Protocol, x.DstPort = "tcp", "22"
				case 2:
					x.Direction, x.Src, x.Dst, x.Protocol = trace.Egress, "", "198.51.100.9", "udp"
					x.DstPort = "53"
				case 3:
					x.Protocol, x.ICMPType = "icmp", "8"
				}
				qs = append(qs, x)
			}
			// The first two packets scan and then index the long chains;
			// a batch pays that once.
			for _, x := range qs[:2] {
				if _, err := h.Trace(x); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				if _, err := h.Trace(qs[i%len(qs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func benchInput(b *testing.B, w string) (rules, sets string, q trace.Query) {
	if w == "lab" {
		rules, q = labHost(b)
		return rules, labSets, q
	}
	out, err := moatRules()
	if err != nil {
		b.Fatal(err)
	}
	// The last port of the workload: its dispatch rules come last.
	ports := workload.NewBench(5000).State.Ports
	last := ports[len(ports)-1].ID
	for _, p := range ports {
		if p.ID > last {
			last = p.ID
		}
	}
	return out[0], out[1], trace.Query{Port: last, Direction: trace.Ingress, Protocol: "4", Src: "203.0.113.1"}
}
