package hybrid

import (
	"fmt"
	"strconv"
	"strings"
)

// ipset text: one reader of `ipset save` and `ipset list` output and one
// writer of `ipset save` text, for trace, the ipset syncer, the fake
// kernel, the compiler's WriteIPSetSave and the parity tests.
//
//	create NAME TYPE family inet hashsize 1024 maxelem 65536 ...
//	add NAME ENTRY [options]
//
//	Name: NAME
//	Type: TYPE
//	Header: family inet hashsize 1024 maxelem 65536 ...
//	Members:
//	ENTRY [options]

// IPSetText is one set as ipset prints it.
type IPSetText struct {
	Name string
	Type string
	// Family is "inet" or "inet6"; "inet" (ipset's default) when the text
	// does not say.
	Family string
	// MaxElem is the set's maxelem, 0 when the text does not say.
	MaxElem int
	// Members are the entries as printed, options included
	// ("10.0.0.0/8 nomatch"), in the order printed.
	Members []string
}

// IPSetEntry is a member's entry without its options: its first word.
func IPSetEntry(member string) string {
	if i := strings.IndexAny(member, " \t"); i >= 0 {
		return member[:i]
	}
	return member
}

// ReadIPSets reads `ipset save` output (create/add lines, also in the
// legacy -N/-A spelling and with -exist) or `ipset list` output
// (Name:/Type:/Header:/Members: blocks); the format is detected. A set
// created or listed twice, a member before its set, a line of neither
// format is an error. Sets come in the order of the text.
func ReadIPSets(s string) ([]IPSetText, error) {
	if strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "Name:") {
		return readIPSetList(s)
	}
	return readIPSetSave(s)
}

// ReadIPSetSave is ReadIPSets for `ipset save` text only, the format a
// syncer reads back from the kernel (list text, which can say what save
// text cannot, is an error).
func ReadIPSetSave(s string) ([]IPSetText, error) { return readIPSetSave(s) }

func readIPSetSave(s string) ([]IPSetText, error) {
	var sets []IPSetText
	byName := map[string]int{}
	for n, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "-exist" {
			f = f[1:]
			if len(f) == 0 {
				return nil, fmt.Errorf("ipset line %d: unexpected %q (want ipset save or ipset list output)", n+1, clip(line))
			}
		}
		switch f[0] {
		case "create", "-N":
			if len(f) < 3 {
				return nil, fmt.Errorf("ipset line %d: bad create line %q", n+1, clip(line))
			}
			if _, dup := byName[f[1]]; dup {
				return nil, fmt.Errorf("ipset line %d: set %s created twice", n+1, f[1])
			}
			set := IPSetText{Name: f[1], Type: f[2], Family: "inet"}
			readIPSetHeader(&set, f[3:])
			byName[set.Name] = len(sets)
			sets = append(sets, set)
		case "add", "-A":
			if len(f) < 3 {
				return nil, fmt.Errorf("ipset line %d: bad add line %q", n+1, clip(line))
			}
			i, ok := byName[f[1]]
			if !ok {
				return nil, fmt.Errorf("ipset line %d: add to set %s before its create line", n+1, f[1])
			}
			sets[i].Members = append(sets[i].Members, strings.Join(f[2:], " "))
		default:
			return nil, fmt.Errorf("ipset line %d: unexpected %q (want ipset save or ipset list output)", n+1, clip(line))
		}
	}
	return sets, nil
}

// readIPSetHeader reads the options of a create line or a Header: line.
func readIPSetHeader(set *IPSetText, f []string) {
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "family":
			set.Family = f[i+1]
		case "maxelem":
			if n, err := strconv.Atoi(f[i+1]); err == nil && n > 0 {
				set.MaxElem = n
			}
		}
	}
}

func readIPSetList(s string) ([]IPSetText, error) {
	var sets []IPSetText
	byName := map[string]bool{}
	inMembers := false
	for n, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			inMembers = false
			continue
		}
		if inMembers {
			set := &sets[len(sets)-1]
			set.Members = append(set.Members, strings.TrimSpace(line))
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("ipset list line %d: unexpected %q", n+1, clip(line))
		}
		val = strings.TrimSpace(val)
		if key == "Name" {
			if byName[val] {
				return nil, fmt.Errorf("ipset list line %d: set %s listed twice", n+1, val)
			}
			byName[val] = true
			sets = append(sets, IPSetText{Name: val, Family: "inet"})
			continue
		}
		if len(sets) == 0 {
			return nil, fmt.Errorf("ipset list line %d: %s before Name", n+1, key)
		}
		set := &sets[len(sets)-1]
		switch key {
		case "Members":
			inMembers = true
		case "Type":
			set.Type = val
		case "Header":
			readIPSetHeader(set, strings.Fields(val))
		}
	}
	for _, set := range sets {
		// ipset list prints every set's type; save text cannot say a set
		// without one.
		if set.Type == "" {
			return nil, fmt.Errorf("ipset list: set %s has no Type line", set.Name)
		}
	}
	return sets, nil
}

// IPSetHeader are the options of a create line, written when not zero.
type IPSetHeader struct {
	HashSize, MaxElem, BucketSize int
	InitVal                       string
}

// IPSetWriter writes `ipset save` text (which `ipset restore` reads).
type IPSetWriter struct {
	b []byte
}

// Create writes a set's create line.
func (w *IPSetWriter) Create(name, typ, family string, h IPSetHeader) {
	w.b = append(append(append(append(w.b, "create "...), name...), ' '), typ...)
	if family != "" {
		w.b = append(append(w.b, " family "...), family...)
	}
	for _, o := range []struct {
		name string
		n    int
	}{{"hashsize", h.HashSize}, {"maxelem", h.MaxElem}, {"bucketsize", h.BucketSize}} {
		if o.n != 0 {
			w.b = append(append(append(w.b, ' '), o.name...), ' ')
			w.b = strconv.AppendInt(w.b, int64(o.n), 10)
		}
	}
	if h.InitVal != "" {
		w.b = append(append(w.b, " initval "...), h.InitVal...)
	}
	w.b = append(w.b, '\n')
}

// Add writes a member's add line.
func (w *IPSetWriter) Add(name, member string) {
	w.b = append(append(append(append(append(w.b, "add "...), name...), ' '), member...), '\n')
}

// Line writes another line of restore input (flush, swap, del, destroy).
func (w *IPSetWriter) Line(words ...string) {
	w.b = append(append(w.b, strings.Join(words, " ")...), '\n')
}

// String returns what was written.
func (w *IPSetWriter) String() string { return string(w.b) }

// Len is the size of what was written.
func (w *IPSetWriter) Len() int { return len(w.b) }
