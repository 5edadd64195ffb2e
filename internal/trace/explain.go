package trace

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Explanation is a port's rules, each with its counters and meaning.
type Explanation struct {
	Tap    string       `json:"tap"`
	PortID string       `json:"port_id,omitempty"`
	Rows   []ExplainRow `json:"rules"`
	// Counters says whether the rules carried counters (iptables-save -c).
	Counters bool `json:"counters"`
}

// ExplainRow is one rule of the port's share of the ruleset.
type ExplainRow struct {
	Family  string `json:"family"` // IPv4 or IPv6
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Number  int    `json:"rule_number"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Rule    string `json:"rule"`
	// Meaning is what the rule stands for; Kind its category.
	Meaning string   `json:"meaning"`
	Kind    string   `json:"origin_kind"`
	Rules   []SGRule `json:"security_group_rules,omitempty"`
}

// Explain lists a port's rules: in each family the raw rules that give it
// its conntrack zone, its dispatch rules in the shared chains, and its i, o
// and s chains in full, with counters and what each rule stands for.
func (h *Host) Explain(portID, tap string) (*Explanation, error) {
	port, err := h.findPort(portID, tap)
	if err != nil {
		return nil, err
	}
	ex := &Explanation{Tap: port.Tap, PortID: port.ID}
	devs := []string{port.Tap, port.BridgeVeth}
	for _, rs := range []*Ruleset{h.IPv4, h.IPv6} {
		if rs == nil {
			continue
		}
		fam := "IPv4"
		if rs.IPv6 {
			fam = "IPv6"
		}
		add := func(r *Rule) {
			o := classifyRule(r, rs.IPv6, h.Provenance)
			ex.Rows = append(ex.Rows, ExplainRow{Family: fam, Table: r.Chain.Table.Name, Chain: r.Chain.Name, Number: r.Num,
				Packets: r.Counters.Packets, Bytes: r.Counters.Bytes, Rule: r.Text, Meaning: o.Text, Kind: o.Kind, Rules: o.Rules})
			ex.Counters = ex.Counters || r.Counters.Known
		}
		for _, tn := range []string{"raw", "filter"} {
			t := rs.Table(tn)
			if t == nil {
				continue
			}
			// Shared chains: the rules that name one of the port's devices.
			for _, c := range t.Chains {
				if _, local, ok := hybrid.SplitWrap(c.Name); !ok || !(local == hybrid.LocalPrerouting || local == hybrid.LocalForward || local == hybrid.LocalInput || local == hybrid.LocalSG) {
					continue
				}
				for _, r := range c.Rules {
					k := r.indexKey()
					for _, d := range devs {
						if k.dev == d {
							add(r)
							break
						}
					}
				}
			}
			if tn != "filter" || port.Chains.In == "" {
				continue
			}
			for _, name := range []string{port.Chains.In, port.Chains.Out, port.Chains.Spoof} {
				if c := t.Chain(name); c != nil {
					for _, r := range c.Rules {
						add(r)
					}
				}
			}
		}
	}
	if len(ex.Rows) == 0 {
		return nil, fmt.Errorf("no rules name %s", port.Tap)
	}
	return ex, nil
}

// WriteExplainText prints an explanation as a table: family, chain, rule
// number, packets, bytes, rule, meaning.
func WriteExplainText(w io.Writer, ex *Explanation) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "port %s", ex.Tap)
	if ex.PortID != "" {
		fmt.Fprintf(bw, " (%s)", ex.PortID)
	}
	fmt.Fprintln(bw)
	if !ex.Counters {
		fmt.Fprintln(bw, "(no counters in the input: read with iptables-save -c to see them)")
	}
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAMILY\tCHAIN\t#\tPKTS\tBYTES\tRULE\tMEANING")
	for _, r := range ex.Rows {
		chain := r.Chain
		if r.Table != "filter" {
			chain = r.Table + ":" + chain
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Family, chain, r.Number,
			human(r.Packets), human(r.Bytes), shortRule(r.Rule), r.Meaning)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// shortRule drops comments, which the meaning column replaces.
func shortRule(rule string) string {
	args, err := hybrid.SplitArgs(rule)
	if err != nil {
		return rule
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		if args[i] == "-m" && i+3 < len(args) && args[i+1] == "comment" && args[i+2] == "--comment" {
			i += 3
			continue
		}
		out = append(out, hybrid.QuoteArg(args[i]))
	}
	return strings.Join(out, " ")
}

// human prints a counter as iptables -L -v does: K, M, G above 99,999.
func human(n uint64) string {
	units := []string{"", "K", "M", "G", "T"}
	i := 0
	for n > 99999 && i < len(units)-1 {
		n /= 1000
		i++
	}
	return strconv.FormatUint(n, 10) + units[i]
}
