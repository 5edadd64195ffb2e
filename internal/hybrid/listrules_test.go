package hybrid

import (
	"reflect"
	"testing"
)

func TestReadListRules(t *testing.T) {
	out := `-N neutron-openvswi-iabc
-A neutron-openvswi-iabc -m state --state RELATED,ESTABLISHED -m comment --comment "Direct packets associated with a known session to the RETURN chain." -c 12 1008 -j RETURN
-A neutron-openvswi-iabc -p icmp -m comment --comment "-c 1 2" -c 4 336 -j RETURN
-A neutron-openvswi-iabc -c 0 0 -j DROP
-A neutron-openvswi-iabc -p tcp -c 5 6
-A neutron-openvswi-iabc -j DROP
`
	got, err := ReadListRules(out)
	if err != nil {
		t.Fatal(err)
	}
	c := func(p, b uint64) Counters { return Counters{Packets: p, Bytes: b, Known: true} }
	want := []ListedRule{
		{"neutron-openvswi-iabc", `-m state --state RELATED,ESTABLISHED -m comment --comment "Direct packets associated with a known session to the RETURN chain." -j RETURN`, c(12, 1008)},
		{"neutron-openvswi-iabc", `-p icmp -m comment --comment "-c 1 2" -j RETURN`, c(4, 336)},
		{"neutron-openvswi-iabc", `-j DROP`, c(0, 0)},
		{"neutron-openvswi-iabc", `-p tcp`, c(5, 6)},
		{"neutron-openvswi-iabc", `-j DROP`, Counters{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	for _, bad := range []string{"*filter\n", "-A c -m comment --comment \"open\n"} {
		if _, err := ReadListRules(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
