package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocumented: every metric defined here is in docs/metrics.md, and
// the sample dashboard queries only metrics that exist.
func TestDocumented(t *testing.T) {
	src, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	var defined []string
	for _, m := range regexp.MustCompile(`Name:\s+"(moat_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		defined = append(defined, m[1])
	}
	if len(defined) < 10 {
		t.Fatalf("found only %d metric definitions in metrics.go: %v", len(defined), defined)
	}
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range defined {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("%s is not in docs/metrics.md", name)
		}
	}
	dash, err := os.ReadFile("../../deploy/grafana/moat.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`moat_[a-z_]+`).FindAllString(string(dash), -1) {
		base := m
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !slices.Contains(defined, base) {
			t.Errorf("the dashboard queries %s, which moat does not export", m)
		}
	}
}
