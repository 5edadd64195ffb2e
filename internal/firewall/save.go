package firewall

import (
	"io"

	"github.com/moat-sg/moat/internal/hybrid"
)

// WriteSave writes the tables as iptables-save prints them on a fresh host
// that holds only moat's rules (no "# Generated"/"# Completed" lines, all
// counters zero), in the given table order. The output is valid
// iptables-restore input.
func WriteSave(w io.Writer, tables ...*Table) error {
	var sw hybrid.SaveWriter
	zero := hybrid.Counters{Known: true}
	for _, t := range tables {
		sw.Table(t.Name)
		for _, c := range t.Builtins {
			sw.Chain(c.Name, "ACCEPT", zero)
		}
		for _, c := range t.Chains {
			sw.Chain(c.Name, "", zero)
		}
		for _, cs := range [][]Chain{t.Builtins, t.Chains} {
			for _, c := range cs {
				for _, r := range c.Rules {
					sw.Rule(c.Name, r, hybrid.Counters{})
				}
			}
		}
		sw.Commit()
	}
	_, err := sw.WriteTo(w)
	return err
}

// WriteIPSetSave writes the sets as `ipset save -sorted` prints them, less
// the random initval ipset adds to each create line. The output is valid
// `ipset restore` input.
func WriteIPSetSave(w io.Writer, sets []IPSet) error {
	var iw hybrid.IPSetWriter
	for _, s := range sets {
		iw.Create(s.Name, s.Type, s.Family, hybrid.IPSetHeader{HashSize: 1024, MaxElem: 65536, BucketSize: 12})
		for _, m := range s.Members {
			iw.Add(s.Name, m)
		}
	}
	_, err := io.WriteString(w, iw.String())
	return err
}
