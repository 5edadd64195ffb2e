package ipset

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/hybrid"
)

// FuzzParseSave feeds arbitrary text to the parser of `ipset save` output
// (seeds in testdata/fuzz/FuzzParseSave). Whatever the input, it returns an
// error or moat's sets only, never panics, and the sets survive a round
// trip: written back as `ipset save` prints them and parsed again, they are
// the same.
func FuzzParseSave(f *testing.F) {
	f.Add("create NIPv4web hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\nadd NIPv4web 10.0.0.1\n")
	f.Fuzz(func(t *testing.T, s string) {
		sets, err := parseSave(s)
		if err != nil {
			return
		}
		names := slices.Sorted(maps.Keys(sets))
		var b strings.Builder
		for _, n := range names {
			st := sets[n]
			if !hybrid.OwnedIPSet(n) {
				t.Errorf("set %q kept as moat's", n)
			}
			for _, w := range append([]string{n, st.typ}, st.members...) {
				if w == "" || strings.ContainsFunc(w, isSpace) {
					t.Errorf("set %q: word %q is not one word", n, w)
				}
			}
			if st.family != "" && strings.ContainsFunc(st.family, isSpace) {
				t.Errorf("set %q: family %q", n, st.family)
			}
			writeSave(&b, n, st)
		}
		again, err := parseSave(b.String())
		if err != nil {
			t.Fatalf("parsing what was written: %v\ninput:\n%s\nwritten:\n%s", err, s, b.String())
		}
		if !reflect.DeepEqual(sets, again) {
			t.Fatalf("round trip changed the sets:\nparsed   %s\nreparsed %s\ninput:\n%s\nwritten:\n%s", dump(sets), dump(again), s, b.String())
		}
	})
}

func isSpace(r rune) bool { return strings.TrimSpace(string(r)) == "" }

// writeSave writes a set as `ipset save` prints it (less what the parser
// does not keep: hashsize, bucketsize, initval).
func writeSave(b *strings.Builder, name string, st *set) {
	var w hybrid.IPSetWriter
	w.Create(name, st.typ, st.family, hybrid.IPSetHeader{MaxElem: st.maxelem})
	for _, m := range st.members {
		w.Add(name, m)
	}
	b.WriteString(w.String())
}

func dump(sets map[string]*set) string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(sets)) {
		fmt.Fprintf(&b, "%s=%+v ", n, *sets[n])
	}
	return b.String()
}
