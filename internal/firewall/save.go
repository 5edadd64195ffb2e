package firewall

import (
	"io"
	"strings"
)

// WriteSave writes the tables as iptables-save prints them on a fresh host
// that holds only moat's rules (no "# Generated"/"# Completed" lines, all
// counters zero), in the given table order. The output is valid
// iptables-restore input.
func WriteSave(w io.Writer, tables ...*Table) error {
	var b strings.Builder
	for _, t := range tables {
		b.WriteString("*" + t.Name + "\n")
		for _, c := range t.Builtins {
			b.WriteString(":" + c.Name + " ACCEPT [0:0]\n")
		}
		for _, c := range t.Chains {
			b.WriteString(":" + c.Name + " - [0:0]\n")
		}
		for _, cs := range [][]Chain{t.Builtins, t.Chains} {
			for _, c := range cs {
				for _, r := range c.Rules {
					b.WriteString("-A " + c.Name + " " + r + "\n")
				}
			}
		}
		b.WriteString("COMMIT\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteIPSetSave writes the sets as `ipset save -sorted` prints them, less
// the random initval ipset adds to each create line. The output is valid
// `ipset restore` input.
func WriteIPSetSave(w io.Writer, sets []IPSet) error {
	var b strings.Builder
	for _, s := range sets {
		b.WriteString("create " + s.Name + " " + s.Type + " family " + s.Family +
			" hashsize 1024 maxelem 65536 bucketsize 12\n")
		for _, m := range s.Members {
			b.WriteString("add " + s.Name + " " + m + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
