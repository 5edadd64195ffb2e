package trace_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

// The --packets format: a packet a JSON line, numbers as numbers or
// strings, comments and blank lines skipped, a result a JSON line; a line
// that cannot be traced gets its error line, the others are traced.
func TestTraceBatch(t *testing.T) {
	h := neutronHost(t, "basic")
	for _, c := range []struct {
		name, in string
		want     []string // per result line: a verdict, or "error:" and what the error says
		err      string
	}{
		{"packets", strings.Join([]string{
			`{"port": "c0a350e0", "direction": "ingress", "protocol": 4, "src": "192.168.1.13"}`,
			`# comments and blank lines are skipped`,
			``,
			`{"port": "c0a350e0", "direction": "ingress", "protocol": "icmp", "src": "10.0.0.1", "icmp_type": 8}`,
			`{"port": "c0a350e0", "direction": "egress", "protocol": "tcp", "dst": "1.1.1.1", "dport": "443"}`,
		}, "\n"), []string{"DROP", "ACCEPT", "ACCEPT"}, ""},
		{"bad lines", `{"port": "c0a350e0", "direction": "sideways", "protocol": 4, "src": "192.168.1.13"}` + "\n" +
			`{"port": "c0a350e0", "protocol": 4, "nonsense": 1}` + "\n" +
			`{"port": "c0a350e0", "protocol": [4]}` + "\n" +
			`{"port": "c0a350e0", "direction": "ingress", "protocol": 4, "src": "192.168.1.13"}` + "\n",
			[]string{"error:1:sideways", "error:2:nonsense", "error:3:want a string or a number", "DROP"}, "3 of the packets"},
		{"nothing", "\n# nothing\n", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			err := h.TraceBatch(&out, strings.NewReader(c.in))
			if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(c.want) == 0 && out.Len() == 0 {
				return
			}
			if len(lines) != len(c.want) {
				t.Fatalf("%d result lines, want %d:\n%s", len(lines), len(c.want), out.String())
			}
			for i, want := range c.want {
				var res struct {
					Verdict string `json:"verdict"`
					Line    int    `json:"line"`
					Error   string `json:"error"`
				}
				if err := json.Unmarshal([]byte(lines[i]), &res); err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				if e, ok := strings.CutPrefix(want, "error:"); ok {
					n, msg, _ := strings.Cut(e, ":")
					if res.Error == "" || !strings.Contains(res.Error, msg) || lines[i][:len(`{"line":`+n)] != `{"line":`+n {
						t.Errorf("line %d: %s, want error %q at line %s", i+1, lines[i], msg, n)
					}
				} else if res.Verdict != want {
					t.Errorf("line %d: verdict %q, want %q", i+1, res.Verdict, want)
				}
			}
		})
	}
	if err := h.TraceBatch(&strings.Builder{}, iotest.ErrReader(errors.New("disk on fire"))); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("read error: %v", err)
	}
}
