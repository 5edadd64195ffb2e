package trace

import (
	"bufio"
	"fmt"
	"io"
)

// WriteText prints a trace for people: the packet, the path (each rule
// met, each match's outcome, what the rule did), the verdict, the rule
// that decided and what it stands for, and the suggestion.
func WriteText(w io.Writer, res *Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "packet: %s\n", res.Packet)
	if res.PortID != "" {
		fmt.Fprintf(bw, "port:   %s (%s)\n", res.PortID, res.Tap)
	}
	fmt.Fprintln(bw, "\npath:")
	lastChain := ""
	for _, st := range res.Path {
		head := st.Table + " " + st.Chain
		if head != lastChain {
			fmt.Fprintf(bw, "  %s\n", head)
			lastChain = head
		}
		if st.Skipped > 0 {
			fmt.Fprintf(bw, "      (%d rules for other devices not evaluated)\n", st.Skipped)
		}
		if st.RuleNumber == 0 {
			fmt.Fprintf(bw, "    %s\n", st.Rule)
			continue
		}
		mark := map[Outcome]string{Yes: "match", No: "no", Unknown: "??"}[st.Result]
		fmt.Fprintf(bw, "    #%-3d %-5s %s\n", st.RuleNumber, mark, st.Rule)
		if st.Result != Yes || len(st.Matches) > 1 {
			for _, m := range st.Matches {
				note := ""
				if m.Note != "" {
					note = "  (" + m.Note + ")"
				}
				fmt.Fprintf(bw, "           %-7s %s%s\n", m.Result, m.Match, note)
			}
		}
		if st.Action != "" {
			fmt.Fprintf(bw, "           -> %s\n", st.Action)
		}
		if st.Origin != nil && st.Origin.Kind != OriginDispatch && st.Origin.Kind != OriginOther && st.Result == Yes {
			fmt.Fprintf(bw, "           (%s)\n", st.Origin.Text)
		}
	}
	fmt.Fprintf(bw, "\nverdict: %s\n", res.Verdict)
	if d := res.DecidedBy; d != nil {
		if d.RuleNumber == 0 {
			fmt.Fprintf(bw, "decided by: %s %s %s\n", d.Table, d.Chain, d.Rule)
		} else {
			fmt.Fprintf(bw, "decided by: %s %s #%d: %s\n", d.Table, d.Chain, d.RuleNumber, d.Rule)
		}
		fmt.Fprintf(bw, "origin: %s\n", d.Origin)
	}
	if res.State != "" {
		fmt.Fprintf(bw, "conntrack: state %s", res.State)
		if res.Zone != 0 {
			fmt.Fprintf(bw, ", zone %d", res.Zone)
		}
		fmt.Fprintln(bw)
	}
	for _, u := range res.Unknown {
		fmt.Fprintf(bw, "unknown: %s\n", u)
	}
	if res.Suggestion != "" {
		fmt.Fprintf(bw, "\nto allow it:\n  %s\n", res.Suggestion)
	}
	if len(res.Notes) > 0 {
		fmt.Fprintln(bw)
		for _, n := range res.Notes {
			fmt.Fprintf(bw, "note: %s\n", n)
		}
	}
	return bw.Flush()
}
