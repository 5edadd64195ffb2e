package netnstest

import (
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
)

// New's namespace lives as long as its test: commands run inside it (not
// in this process's namespace), netlink sees it, and it is gone when the
// test has ended.
func TestNew(t *testing.T) {
	var name string
	t.Run("inside", func(t *testing.T) {
		ns := New(t, "moat-nst")
		name = ns.Name
		if !strings.HasPrefix(name, "moat-nst-") || !dataplane.NetnsExists(name) {
			t.Fatalf("namespace %q missing", name)
		}
		here := Run(t, dataplane.Host{}, "", "readlink", "/proc/self/ns/net")
		there := Run(t, ns, "", "readlink", "/proc/self/ns/net")
		if here == there {
			t.Errorf("Run in the namespace ran in this process's namespace (%s)", here)
		}
		if got := Run(t, ns, "hello\n", "cat"); got != "hello\n" {
			t.Errorf("stdin: cat printed %q", got)
		}
		links, err := Handle(t, name).LinkList()
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" {
			t.Errorf("links in a fresh namespace: %v, want only lo", links)
		}
	})
	if name == "" {
		t.Fatal("the subtest made no namespace")
	}
	if dataplane.NetnsExists(name) {
		t.Errorf("namespace %s left after its test ended", name)
	}
}
