package nftables

import (
	"net/netip"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []string
		want string
	}{
		{"empty", nil, ""},
		{"one address", []string{"10.0.0.1"}, "10.0.0.1"},
		{"duplicates", []string{"10.0.0.1", "10.0.0.1/32"}, "10.0.0.1"},
		{"contained", []string{"10.0.0.0/8", "10.1.2.3", "10.255.255.255"}, "10.0.0.0/8"},
		{"adjacent halves make a prefix", []string{"10.0.0.0/25", "10.0.0.128/25"}, "10.0.0.0/24"},
		{"adjacent addresses make a range", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "10.0.0.1-10.0.0.3"},
		{"overlap makes a range", []string{"10.0.0.0/25", "10.0.0.64/26", "10.0.0.128/26", "10.0.0.200"}, "10.0.0.0-10.0.0.191 10.0.0.200"},
		{"gap kept", []string{"10.0.0.1", "10.0.0.3"}, "10.0.0.1 10.0.0.3"},
		{"host bits masked", []string{"10.0.0.1/24"}, "10.0.0.0/24"},
		{"everything", []string{"0.0.0.0/0", "10.0.0.0/8"}, "0.0.0.0/0"},
		{"top of the space", []string{"255.255.255.255", "255.255.255.254"}, "255.255.255.254/31"},
		{"families apart", []string{"::1", "10.0.0.1", "::/127", "0.0.0.0/0"}, "0.0.0.0/0 ::/127"},
		{"v6 top", []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120"}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120"},
		{"unsorted input", []string{"10.0.0.9", "10.0.0.1", "10.0.0.5/32"}, "10.0.0.1 10.0.0.5 10.0.0.9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			out := MergePrefixes(prefixes(c.in))
			for _, iv := range out {
				got = append(got, iv.String())
			}
			if g := strings.Join(got, " "); g != c.want {
				t.Errorf("merge %v = %q, want %q", c.in, g, c.want)
			}
			if a, b, ok := overlaps(out); ok {
				t.Errorf("merged intervals %s and %s overlap", a, b)
			}
		})
	}
}

// TestMergeRanges: explicit ranges, and invalid intervals left out.
func TestMergeRanges(t *testing.T) {
	iv := func(lo, hi string) Interval { return Interval{netip.MustParseAddr(lo), netip.MustParseAddr(hi)} }
	got := Merge([]Interval{iv("10.0.0.5", "10.0.0.9"), iv("10.0.0.10", "10.0.0.20"), iv("10.0.0.30", "10.0.0.1"), {}, iv("10.0.0.1", "::1")})
	if len(got) != 1 || got[0].String() != "10.0.0.5-10.0.0.20" {
		t.Errorf("merge = %v", got)
	}
}

func TestIntervalString(t *testing.T) {
	iv := func(lo, hi string) Interval { return Interval{netip.MustParseAddr(lo), netip.MustParseAddr(hi)} }
	for _, c := range []struct {
		iv   Interval
		want string
	}{
		{iv("192.0.2.7", "192.0.2.7"), "192.0.2.7"},
		{iv("198.51.100.0", "198.51.100.255"), "198.51.100.0/24"},
		{iv("198.51.100.0", "198.51.100.254"), "198.51.100.0-198.51.100.254"},
		{iv("198.51.100.1", "198.51.100.255"), "198.51.100.1-198.51.100.255"},
		{iv("0.0.0.0", "255.255.255.255"), "0.0.0.0/0"},
		{iv("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "::/0"},
		{iv("2001:db8::", "2001:db8::ffff"), "2001:db8::/112"},
	} {
		if got := c.iv.String(); got != c.want {
			t.Errorf("%v = %q, want %q", c.iv, got, c.want)
		}
	}
}
