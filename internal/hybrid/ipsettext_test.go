package hybrid

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

func TestReadIPSets(t *testing.T) {
	save := `create NIPv4a hash:net family inet hashsize 1024 maxelem 131072 bucketsize 12 initval 0x1
add NIPv4a 10.0.0.0/24
add NIPv4a   10.0.0.7   nomatch
# a comment
-exist create NIPv6b hash:net family inet6
-N legacy hash:ip
-A legacy 10.0.0.1
-exist add legacy 10.0.0.2
`
	want := []IPSetText{
		{Name: "NIPv4a", Type: "hash:net", Family: "inet", MaxElem: 131072, Members: []string{"10.0.0.0/24", "10.0.0.7 nomatch"}},
		{Name: "NIPv6b", Type: "hash:net", Family: "inet6"},
		{Name: "legacy", Type: "hash:ip", Family: "inet", Members: []string{"10.0.0.1", "10.0.0.2"}},
	}
	if got, err := ReadIPSets(save); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("save: %v\n got %+v\nwant %+v", err, got, want)
	}
	list := "Name: NIPv6x\r\nType: hash:net\r\nRevision: 7\r\nHeader: family inet6 hashsize 1024 maxelem 65536\r\nMembers:\r\n2001:db8::/64\r\n::/1 nomatch\r\n\r\nName: other set\r\nType: list:set\r\nMembers:\r\nNIPv6x\r\n"
	want = []IPSetText{
		{Name: "NIPv6x", Type: "hash:net", Family: "inet6", MaxElem: 65536, Members: []string{"2001:db8::/64", "::/1 nomatch"}},
		{Name: "other set", Type: "list:set", Family: "inet", Members: []string{"NIPv6x"}},
	}
	if got, err := ReadIPSets(list); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("list: %v\n got %+v\nwant %+v", err, got, want)
	}
	if _, err := ReadIPSetSave(list); err == nil {
		t.Error("ReadIPSetSave read list text")
	}
	if got, err := ReadIPSetSave(save); err != nil || len(got) != 3 {
		t.Errorf("ReadIPSetSave: %v %v", got, err)
	}
	if IPSetEntry("10.0.0.7 nomatch") != "10.0.0.7" || IPSetEntry("10.0.0.7") != "10.0.0.7" {
		t.Error("IPSetEntry")
	}
	for bad, msg := range map[string]string{
		"add x 1.2.3.4\n":                      "before its create line",
		"create x\n":                           "bad create line",
		"create x hash:ip\nadd x\n":            "bad add line",
		"create x hash:ip\ncreate x hash:ip\n": "created twice",
		"frobnicate\n":                         "unexpected",
		"-exist\n":                             "unexpected",
		"Name: a\nName: a\n":                   "listed twice",
		"Members:\n":                           "unexpected",
		" Name: a\n":                           "Name before Name",
		"Name: a\nMembers:\n10.0.0.1\n":        "no Type line",
		"Name: a\nrubbish\n":                   "unexpected",
	} {
		if _, err := ReadIPSets(bad); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", bad, err, msg)
		}
	}
}

func TestIPSetWriter(t *testing.T) {
	var w IPSetWriter
	w.Create("NIPv4x", "hash:net", "inet", IPSetHeader{HashSize: 1024, MaxElem: 65536, BucketSize: 12, InitVal: "0x1"})
	w.Add("NIPv4x", "10.0.0.1")
	w.Create("NIPv4y", "hash:net", "inet", IPSetHeader{})
	w.Line("swap", "NIPv4x", "NIPv4y")
	want := "create NIPv4x hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\nadd NIPv4x 10.0.0.1\ncreate NIPv4y hash:net family inet\nswap NIPv4x NIPv4y\n"
	if w.String() != want || w.Len() != len(want) {
		t.Errorf("got\n%s\nwant\n%s", w.String(), want)
	}
}

// FuzzReadIPSets: whatever the input, ReadIPSets returns an error or sets
// that IPSetWriter writes back as `ipset save` text ReadIPSets reads as
// the same sets (seeds in testdata/fuzz/FuzzReadIPSets: Neutron's dumps,
// and what the fuzzing of trace's and the syncer's readers found).
func FuzzReadIPSets(f *testing.F) {
	dirs, _ := filepath.Glob(filepath.Join("..", "trace", "testdata", "neutron", "*", "ipset.txt"))
	for _, p := range dirs {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		sets, err := ReadIPSets(s)
		if err != nil {
			return
		}
		var w IPSetWriter
		for _, set := range sets {
			for _, word := range []string{set.Name, set.Type, set.Family} {
				if word == "" || strings.ContainsFunc(word, unicode.IsSpace) {
					// ipset list text may name a set with blanks; save text
					// cannot say it.
					return
				}
			}
			w.Create(set.Name, set.Type, set.Family, IPSetHeader{MaxElem: set.MaxElem})
			for _, m := range set.Members {
				w.Add(set.Name, m)
			}
		}
		again, err := ReadIPSets(w.String())
		if err != nil {
			t.Fatalf("reading what was written: %v\ninput:\n%q\nwritten:\n%q", err, s, w.String())
		}
		if len(sets) == 0 && len(again) == 0 {
			return
		}
		for i := range sets {
			for j, m := range sets[i].Members {
				sets[i].Members[j] = strings.Join(strings.Fields(m), " ") // blanks fold on the way
			}
		}
		if !reflect.DeepEqual(sets, again) {
			t.Fatalf("round trip changed the sets:\nread     %+v\nreread   %+v\ninput:\n%q\nwritten:\n%q", sets, again, s, w.String())
		}
	})
}
