package firewall

import (
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/hybrid"
)

func TestWriteSaveAndIPSetSave(t *testing.T) {
	tb := &Table{
		Name:     "raw",
		Builtins: []Chain{{Name: "PREROUTING", Rules: []string{"-j " + hybrid.ChainPrerouting}}, {Name: "OUTPUT"}},
		Chains:   []Chain{{Name: hybrid.ChainOutput}, {Name: hybrid.ChainPrerouting, Rules: []string{"-i qvbx -j CT --notrack"}}},
	}
	var b strings.Builder
	if err := WriteSave(&b, tb); err != nil {
		t.Fatal(err)
	}
	want := `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:neutron-openvswi-OUTPUT - [0:0]
:neutron-openvswi-PREROUTING - [0:0]
-A PREROUTING -j neutron-openvswi-PREROUTING
-A neutron-openvswi-PREROUTING -i qvbx -j CT --notrack
COMMIT
`
	if b.String() != want {
		t.Errorf("WriteSave:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteIPSetSave(&b, []IPSet{{Name: "NIPv4x", Type: "hash:net", Family: "inet", Members: []string{"10.0.0.1", "10.1.0.0/16"}}}); err != nil {
		t.Fatal(err)
	}
	want = "create NIPv4x hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12\nadd NIPv4x 10.0.0.1\nadd NIPv4x 10.1.0.0/16\n"
	if b.String() != want {
		t.Errorf("WriteIPSetSave:\n%s\nwant:\n%s", b.String(), want)
	}
}
