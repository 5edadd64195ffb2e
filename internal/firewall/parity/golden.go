// Package parity compares the firewall compiler's output with what the real
// Neutron 21 driver installed, as recorded by the reference harness
// (shared/reference/neutron/render.py): one directory per case with, for
// each dump, NN-label.iptables-save.txt, NN-label.ip6tables-save.txt and
// NN-label.ipset.txt (`ipset list -sorted`).
package parity

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// Case is one golden directory and the scenario it was rendered from.
type Case struct {
	Dir      string         `json:"dir"`
	Spec     string         `json:"spec"`
	Scenario string         `json:"scenario"`
	Set      map[string]any `json:"set,omitempty"`
}

// Index lists the cases of a corpus.
type Index struct {
	Source string `json:"source,omitempty"`
	Cases  []Case `json:"cases"`
}

// LoadIndex reads a cases.json.
func LoadIndex(path string) (*Index, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &ix, nil
}

// Dump is the host state Neutron left at one dump step.
type Dump struct {
	Label string
	// Tables maps "ipv4"/"ipv6" and a table name to the table's block as
	// iptables-save printed it, from "*name" to "COMMIT".
	Tables map[string]map[string]string
	IPSets []firewall.IPSet
}

var dumpFile = regexp.MustCompile(`^(\d\d)-(.+)\.iptables-save\.txt$`)

// ReadDumps reads every dump of a golden directory, in order.
func ReadDumps(dir string) ([]Dump, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if dumpFile.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var dumps []Dump
	for _, n := range names {
		m := dumpFile.FindStringSubmatch(n)
		base := filepath.Join(dir, m[1]+"-"+m[2])
		d := Dump{Label: m[2], Tables: map[string]map[string]string{}}
		for fam, suffix := range map[string]string{"ipv4": ".iptables-save.txt", "ipv6": ".ip6tables-save.txt"} {
			b, err := os.ReadFile(base + suffix)
			if err != nil {
				return nil, err
			}
			if d.Tables[fam], err = SplitTables(string(b)); err != nil {
				return nil, fmt.Errorf("%s%s: %w", base, suffix, err)
			}
		}
		b, err := os.ReadFile(base + ".ipset.txt")
		if err != nil {
			return nil, err
		}
		if d.IPSets, err = ParseIPSetList(string(b)); err != nil {
			return nil, fmt.Errorf("%s.ipset.txt: %w", base, err)
		}
		dumps = append(dumps, d)
	}
	if len(dumps) == 0 {
		return nil, fmt.Errorf("%s: no dumps", dir)
	}
	return dumps, nil
}

// SplitTables splits iptables-save output into its tables, each as its
// lines read (hybrid.ReadSave), from "*name" to "COMMIT". Comment lines
// are dropped; every table must end with COMMIT.
func SplitTables(save string) (map[string]string, error) {
	tables := map[string]string{}
	var b strings.Builder
	err := hybrid.ReadSave(save, func(l *hybrid.SaveLine) error {
		if l.Kind == hybrid.SaveComment {
			return nil
		}
		b.WriteString(l.Text + "\n")
		if l.Kind == hybrid.SaveCommit {
			tables[l.Table] = b.String()
			b.Reset()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tables, nil
}

// ParseIPSetList reads `ipset list` output (hybrid.ReadIPSets: names,
// types, families and members; headers such as initval are ignored),
// sorted by name.
func ParseIPSetList(text string) ([]firewall.IPSet, error) {
	read, err := hybrid.ReadIPSets(text)
	if err != nil {
		return nil, err
	}
	sets := make([]firewall.IPSet, len(read))
	for i, s := range read {
		sets[i] = firewall.IPSet{Name: s.Name, Type: s.Type, Family: s.Family, Members: s.Members}
	}
	sort.Slice(sets, func(i, j int) bool { return sets[i].Name < sets[j].Name })
	return sets, nil
}

// Compare lists the differences between a compiled ruleset and a dump; an
// empty result means the ruleset is exactly what Neutron installed.
func Compare(rs *firewall.Ruleset, d Dump) []string { return CompareExcept(rs, d, nil) }

// CompareExcept is Compare with the rules for which skip returns true left
// out on both sides (skip gets the chain name and the rule text after
// "-A <chain> ").
func CompareExcept(rs *firewall.Ruleset, d Dump, skip func(chain, rule string) bool) []string {
	var diffs []string
	for _, fam := range []struct {
		name string
		t    *firewall.Tables
	}{{"ipv4", &rs.IPv4}, {"ipv6", &rs.IPv6}} {
		for _, t := range []*firewall.Table{&fam.t.Filter, &fam.t.Raw} {
			var b strings.Builder
			if err := firewall.WriteSave(&b, t); err != nil {
				diffs = append(diffs, err.Error())
				continue
			}
			want := filterRules(d.Tables[fam.name][t.Name], skip)
			if got := filterRules(b.String(), skip); got != want {
				diffs = append(diffs, fmt.Sprintf("%s %s table differs:\n%s", fam.name, t.Name, LineDiff(want, got)))
			}
		}
		if len(d.Tables[fam.name]) != 2 {
			diffs = append(diffs, fmt.Sprintf("%s: Neutron left tables %v, moat writes filter and raw", fam.name, keys(d.Tables[fam.name])))
		}
	}
	got, want := setsText(rs.IPSets), setsText(d.IPSets)
	if got != want {
		diffs = append(diffs, "ipsets differ:\n"+LineDiff(want, got))
	}
	return diffs
}

// filterRules drops the rules of a table's text for which skip is true.
func filterRules(table string, skip func(chain, rule string) bool) string {
	if skip == nil {
		return table
	}
	var b strings.Builder
	if err := hybrid.ReadSave(table, func(l *hybrid.SaveLine) error {
		if l.Kind != hybrid.SaveRule || !skip(l.Chain, l.Rule) {
			b.WriteString(l.Text + "\n")
		}
		return nil
	}); err != nil {
		return table + "(" + err.Error() + ")\n"
	}
	return b.String()
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func setsText(sets []firewall.IPSet) string {
	var b strings.Builder
	for _, s := range sets {
		fmt.Fprintf(&b, "%s %s %s\n", s.Name, s.Type, s.Family)
		for _, m := range s.Members {
			b.WriteString("  " + m + "\n")
		}
	}
	return b.String()
}

// LineDiff is a small line diff (want as "-", got as "+") for messages.
func LineDiff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// Longest common subsequence; inputs are small.
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out.WriteString("+ " + b[j] + "\n")
			j++
		default:
			out.WriteString("- " + a[i] + "\n")
			i++
		}
	}
	return out.String()
}
