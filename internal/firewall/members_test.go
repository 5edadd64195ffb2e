package firewall

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Orders `ipset list -sorted` (ipset 7.17) printed for these members of a
// hash:net set, added in another order.
var ipsetSorted = [][]string{
	{"9.255.255.255", "10.0.0.0/31", "10.0.0.0/30", "10.0.0.0/24", "10.0.0.0/8", "10.0.0.4/30", "10.0.0.5", "10.0.1.0/24", "10.128.0.0/9"},
	{"0.0.0.0/1", "9.0.0.1", "10.0.0.0/24", "10.0.0.1", "10.1.0.0/16", "100.0.0.0/8", "128.0.0.0/1", "192.168.1.2"},
	{"10.0.0.0", "10.0.0.0/30", "10.0.0.0/24", "10.0.0.0/16", "10.0.0.0/8"},
	{"::/1", "::/96", "::1:0:0/96", "::5", "2001:db8::1", "2001:db8::1:0:0:1", "2001:db8::1:0:0/96",
		"2001:db8::/32", "2001:db8::/33", "2001:db8::/64", "2001:db8::/95", "2001:db8::/96", "2001:db8::/126",
		"2001:db8:0:1::/64", "2001:db8:1::/48", "2001:db9::1"},
	{"::/1", "2001:db8::9", "2001:db8::b", "2001:db8::/32", "2001:db8:3::8", "8000::/1"},
}

func TestCompareSetEntriesLikeIpset(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, want := range ipsetSorted {
		for i := 0; i < 20; i++ {
			got := slices.Clone(want)
			r.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
			slices.SortFunc(got, compareSetEntries)
			if !slices.Equal(got, want) {
				t.Fatalf("sorted %v, ipset prints %v", got, want)
			}
		}
	}
}

func TestSetEntries(t *testing.T) {
	l := parseAddresses([]string{
		"10.1.2.3/24", "10.1.2.0/24", // host bits are cleared; duplicates merge
		"192.168.0.5", "192.168.0.5/32",
		"0.0.0.0/0", // ipset cannot hold /0: two /1s
		"2001:db8::5/64", "::/0", "2001:DB8::1",
	})
	if len(l.bad) > 0 {
		t.Fatal(l.bad)
	}
	if want := []string{"0.0.0.0/1", "10.1.2.0/24", "128.0.0.0/1", "192.168.0.5"}; !slices.Equal(l.setEntries[v4], want) {
		t.Errorf("IPv4 entries %v, want %v", l.setEntries[v4], want)
	}
	if want := []string{"::/1", "2001:db8::1", "2001:db8::/64", "8000::/1"}; !slices.Equal(l.setEntries[v6], want) {
		t.Errorf("IPv6 entries %v, want %v", l.setEntries[v6], want)
	}
	if l := parseAddresses([]string{"10.0.0.300", "10.0.0.1"}); !slices.Equal(l.bad, []string{`"10.0.0.300"`}) ||
		!slices.Equal(l.setEntries[v4], []string{"10.0.0.1"}) {
		t.Errorf("bad address: bad %v, entries %v; want it left out alone", l.bad, l.setEntries[v4])
	}
}
