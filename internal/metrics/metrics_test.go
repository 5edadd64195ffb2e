package metrics

import "testing"

func TestRoute(t *testing.T) {
	for _, c := range []struct {
		segs    []string
		matched bool
		want    string
	}{
		{[]string{"ports"}, true, "/v2.0/ports"},
		{[]string{"ports", "abc"}, true, "/v2.0/ports/{id}"},
		{[]string{"ports", "abc", "tags", "x"}, true, "/v2.0/ports/{id}/tags/{id}"},
		{[]string{"quotas", "p", "details"}, true, "/v2.0/quotas/{id}/details"},
		{[]string{"moat", "hosts", "h1", "report"}, true, "/v2.0/moat/hosts/{id}/report"},
		{[]string{"log", "logs", "l1"}, true, "/v2.0/log/logs/{id}"},
		{nil, true, "/v2.0"},
		{[]string{"whatever", "x"}, false, "unmatched"},
	} {
		if got := Route(c.segs, c.matched); got != c.want {
			t.Errorf("Route(%v, %v) = %s, want %s", c.segs, c.matched, got, c.want)
		}
	}
}
