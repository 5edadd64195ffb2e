package api

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// /metrics answers without credentials and counts the API's requests by
// route (ids replaced), method and status; a path the API does not route
// is "unmatched", whatever a client puts in it.
func TestMetrics(t *testing.T) {
	srv := newTestServer(t, NoAuth{})
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v2.0/security-groups", `{"security_group":{"name":"m"}}`},
		{"GET", "/v2.0/security-groups", ""},
		{"GET", "/v2.0/ports/4c6a3f6e-0000-4000-8000-000000000001", ""},
		{"GET", "/v2.0/no-such-thing-7f3a/xyz", ""},
	} {
		req, _ := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "moat_api_request_duration_seconds_count") {
			lines = append(lines, sc.Text())
		}
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		`code="201",method="POST",route="/v2.0/security-groups"`,
		`code="200",method="GET",route="/v2.0/security-groups"`,
		`code="404",method="GET",route="/v2.0/ports/{id}"`,
		`code="404",method="GET",route="unmatched"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no request counted with %s in:\n%s", want, text)
		}
	}
	if strings.Contains(text, "no-such-thing") || strings.Contains(text, "4c6a3f6e") {
		t.Errorf("a client's path made it into a label:\n%s", text)
	}
}
