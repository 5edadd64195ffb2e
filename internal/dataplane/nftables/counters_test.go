package nftables

import (
	"reflect"
	"testing"
)

func TestParseChainCounters(t *testing.T) {
	out := `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"chain": {"family": "ip", "table": "moat", "name": "i-p1", "handle": 7}},
{"rule": {"family": "ip", "table": "moat", "chain": "i-p1", "handle": 8, "comment": "established #0123456789ab",
  "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"counter": {"packets": 12, "bytes": 1008}}, {"return": null}]}},
{"rule": {"family": "ip", "table": "moat", "chain": "i-p1", "handle": 9, "comment": "sgr 5e00",
  "expr": [{"return": null}]}}]}`
	got, err := parseChainCounters([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []ChainRule{{Origin: "established", Counted: true, Packets: 12, Bytes: 1008}, {Origin: "sgr 5e00"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseChainCounters([]byte("Error: nope")); err == nil {
		t.Error("bad JSON: no error")
	}
}
