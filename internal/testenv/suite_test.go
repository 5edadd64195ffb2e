package testenv

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Checks on the test suite itself: the rules this package exists for hold
// in every test file of the module.

const root = "../.."

// testFiles returns the module's _test.go files and helper packages for
// tests (…test/ directories), relative to the root.
func testFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, path)
		if strings.HasSuffix(path, ".go") && (strings.HasSuffix(path, "_test.go") || strings.HasSuffix(filepath.Dir(path), "test")) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 50 {
		t.Fatalf("found only %d test files under %s", len(out), root)
	}
	return out
}

// allowed are the files whose skips or root checks are not about a
// missing prerequisite, so that no MOAT_REQUIRE_* variable may turn them
// into failures.
var allowed = map[string]string{
	"internal/dataplane/wiring/netns_test.go": "skip: the openvswitch module is loaded, so its missing-module error cannot be provoked",
	"internal/trace/bench_test.go":            "skip: a benchmark's input outside the project (benchmarks never run in CI)",
	"internal/e2e/main_test.go":               "Geteuid: TestMain sweeps labs left by dead runs only as root; the tests themselves use RequireNetns",
	"internal/store/pgtest/pgtest.go":         "Geteuid: the reason PostgreSQL cannot start, reported through Postgres.Missing",
}

var rawSkip = regexp.MustCompile(`\b(t|b|tb|f)\.Skip(f|Now)?\(|os\.Geteuid\(\)`)

// TestNoRawSkips keeps every "needs root / a tool / a kernel feature / the
// CLI / PostgreSQL" decision in this package, where MOAT_REQUIRE_* turns it
// into a failure: a test elsewhere that skips on its own would skip in CI
// too.
func TestNoRawSkips(t *testing.T) {
	for _, file := range testFiles(t) {
		if strings.HasPrefix(file, "internal/testenv/") {
			continue
		}
		f, err := os.Open(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if !rawSkip.MatchString(line) || strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			if why, ok := allowed[file]; ok && strings.Contains(line, "Geteuid") == strings.HasPrefix(why, "Geteuid") {
				continue
			}
			t.Errorf("%s:%d: %s\n\tskip through internal/testenv (RequireRoot, RequireTools, RequireNetns, OptIn, …) so that MOAT_REQUIRE_* can fail it", file, n, strings.TrimSpace(line))
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
}

var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)

// TestFuzzTargetsRunInCI checks that every fuzz target is in the
// Makefile's FUZZ_TARGETS (which make test runs) and has a committed seed
// corpus, and that the Makefile names no target that does not exist.
func TestFuzzTargetsRunInCI(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FUZZ_TARGETS :=((?:[^\n]*\\\n)*[^\n]*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no FUZZ_TARGETS in the Makefile")
	}
	listed := strings.Fields(strings.ReplaceAll(string(m[1]), "\\", " "))
	var found []string
	for _, file := range testFiles(t) {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, fm := range fuzzFunc.FindAllSubmatch(b, -1) {
			target := filepath.ToSlash(filepath.Dir(file)) + ":" + string(fm[1])
			found = append(found, target)
			corpus, _ := os.ReadDir(filepath.Join(root, filepath.Dir(file), "testdata", "fuzz", string(fm[1])))
			if len(corpus) == 0 {
				t.Errorf("%s has no committed seed corpus in %s/testdata/fuzz/%s", target, filepath.Dir(file), fm[1])
			}
		}
	}
	slices.Sort(found)
	slices.Sort(listed)
	if !slices.Equal(found, listed) {
		t.Errorf("the Makefile's FUZZ_TARGETS\n\t%v\ndo not match the fuzz targets in the code\n\t%v", listed, found)
	}
}
