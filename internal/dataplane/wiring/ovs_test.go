package wiring

import (
	"reflect"
	"testing"
)

// Output of ovs-vsctl 3.1 for Plugged's query (a br-int with one qvo port,
// a qvo port on another bridge and br-int's own port).
const vsctlPortsJSON = `{"data":[[["set",[["uuid","5a4b2196-61d5-4580-a6bf-6422e3761c6f"],["uuid","8a2f2c2d-b4f8-45a5-af2b-58f1870de8c2"]]]]],"headings":["ports"]}
{"data":[[["uuid","8a2f2c2d-b4f8-45a5-af2b-58f1870de8c2"],"qvoc0a350e0-43",5,["map",[["net_uuid","net1"]]]],[["uuid","5a4b2196-61d5-4580-a6bf-6422e3761c6f"],"br-int",["set",[]],["map",[]]],[["uuid","11111111-61d5-4580-a6bf-6422e3761c6f"],"qvo5f2b7e1d-9a",["set",[]],["map",[]]]],"headings":["_uuid","name","tag","other_config"]}
{"data":[["br-int",["map",[]]],["qvoc0a350e0-43",["map",[["attached-mac","fa:16:3e:c3:ea:d5"],["iface-id","c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a"],["iface-status","active"]]]]],"headings":["name","external_ids"]}
`

func TestDecodePorts(t *testing.T) {
	tables, err := decodeTables([]byte(vsctlPortsJSON))
	if err != nil || len(tables) != 3 {
		t.Fatalf("decodeTables: %d tables, %v", len(tables), err)
	}
	if got := tables[1][0]["tag"].set()[0].int(); got != 5 {
		t.Errorf("tag = %d, want 5", got)
	}
	if got := tables[1][1]["tag"].set(); len(got) != 0 {
		t.Errorf("empty tag = %v", got)
	}
	if got := tables[2][1]["external_ids"].smap()["iface-id"]; got != "c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a" {
		t.Errorf("iface-id = %q", got)
	}
	if got := len(tables[0][0]["ports"].set()); got != 2 {
		t.Errorf("bridge ports = %d, want 2", got)
	}
	want := map[string]string{"net_uuid": "net1"}
	if got := tables[1][0]["other_config"].smap(); !reflect.DeepEqual(got, want) {
		t.Errorf("other_config = %v", got)
	}
}
