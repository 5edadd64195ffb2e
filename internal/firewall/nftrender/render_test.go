package nftrender

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	nft "github.com/moat-sg/moat/internal/dataplane/nftables"
	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/netnstest"
	"github.com/moat-sg/moat/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files")

type scenario struct {
	name string
	rs   *firewall.Ruleset
}

// scenarios are the reference harness's scenarios, compiled.
func scenarios(t *testing.T) []scenario {
	t.Helper()
	var out []scenario
	for _, file := range []string{"sample.json", "edge.json"} {
		sf, err := spec.Load(nil, filepath.Join("..", "testdata", "neutron", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range sf.Names() {
			st, _, err := sf.CompileState(file, name, false)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := firewall.Compile(st)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, scenario{strings.TrimSuffix(file, ".json") + "-" + name, rs})
		}
	}
	return out
}

// TestGolden renders every reference scenario to the `nft -f` script a
// fresh host loads and compares it with testdata/NAME.nft (go test
// -update rewrites them).
func TestGolden(t *testing.T) {
	for _, sc := range scenarios(t) {
		t.Run(sc.name, func(t *testing.T) {
			got := script(t, sc.rs)
			path := filepath.Join("testdata", sc.name+".nft")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("rendering differs from %s (go test -update rewrites it):\n%s", path, diff(string(want), string(got)))
			}
		})
	}
}

func script(t *testing.T, rs *firewall.Ruleset) []byte {
	t.Helper()
	out, err := Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := nft.Script(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return b.String()
}

// TestKernelLoad loads every rendered scenario into a scratch namespace's
// nftables with the syncer, then the next one over it (a diff), and
// checks that the kernel holds exactly what was rendered.
func TestKernelLoad(t *testing.T) {
	testenv.RequireNetns(t)
	testenv.RequireTools(t, "nft")
	ns := netnstest.New(t, "moat-nftr")
	s := nft.NewSyncer(ns)
	ctx := context.Background()
	for _, sc := range scenarios(t) {
		out, err := Render(sc.rs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, out); err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		s.Invalidate()
		drift, err := s.Check(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		if len(drift) > 0 {
			t.Errorf("%s: the kernel differs from the rendering: %v", sc.name, drift)
		}
	}
}

// TestRendererCache: a Renderer gives the same rendering as Render, for
// every scenario in turn and again (the cache of the one before in use).
func TestRendererCache(t *testing.T) {
	rd := NewRenderer()
	scs := scenarios(t)
	for round := 0; round < 2; round++ {
		for _, sc := range scs {
			out, err := rd.Render(sc.rs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := nft.Script(out)
			if err != nil {
				t.Fatal(err)
			}
			if want := script(t, sc.rs); string(got) != string(want) {
				t.Errorf("round %d, %s: the cached rendering differs:\n%s", round, sc.name, diff(string(want), string(got)))
			}
		}
	}
}
