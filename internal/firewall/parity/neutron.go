package parity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/moat-sg/moat/internal/firewall/spec"
)

// Python is the interpreter that can import Debian's python3-neutron.
const Python = "/usr/bin/python3"

// RefDir is the reference harness directory: $MOAT_NEUTRON_REF, or the
// shared checkout's.
func RefDir() string {
	if d := os.Getenv("MOAT_NEUTRON_REF"); d != "" {
		return d
	}
	return "/work/shared/reference/neutron"
}

// Available reports why the real Neutron driver cannot be run here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("not root (render.py creates network namespaces)")
	}
	if _, err := os.Stat(filepath.Join(RefDir(), "render.py")); err != nil {
		return fmt.Errorf("no reference harness: %w (set MOAT_NEUTRON_REF)", err)
	}
	if out, err := exec.Command(Python, "-c", "import neutron").CombinedOutput(); err != nil {
		return fmt.Errorf("%s cannot import neutron: %v %s", Python, err, bytes.TrimSpace(out))
	}
	return nil
}

// Render runs render.py on a spec file with the legacy iptables backend and
// writes one golden directory per scenario under out.
func Render(ctx context.Context, specPath, out string) error {
	cmd := exec.CommandContext(ctx, Python, filepath.Join(RefDir(), "render.py"), specPath,
		"--backend", "legacy", "--out", out, "--quiet")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("render.py %s: %v\n%s", specPath, err, b)
	}
	return nil
}

// portGroupOrder asks the reference harness in which order Neutron's agent
// walks each local port's security groups. Neutron keeps them in a Python
// set, so the order is the set's iteration order under the harness's
// PYTHONHASHSEED=0, which depends on the ids (and, on collisions, on the
// order they were inserted). moat emits groups in the order it is given.
const portGroupOrder = `
import json, os, sys
sys.path.insert(0, os.environ['MOAT_NEUTRON_REF'])
import anchor_lib as al
al.configure(log_level='ERROR')
from neutron_lib import context as n_ctx
spec = json.load(open(sys.argv[1]))
out = {}
for sc in spec.get('scenarios', [spec]):
    model = al.Model(sc)
    cache = al.SpecResourceCache()
    al.fill_cache(model, cache)
    info = al.Shim(cache)._get_devices_info(n_ctx.get_admin_context(), list(model.ports))
    out[sc['name']] = {pid: p['security_groups'] for pid, p in info.items()}
json.dump(out, sys.stdout)
`

// OrderGroupsLikeNeutron reorders each local port's security groups into
// the order Neutron will use for them, so that the same spec means the same
// thing to both. Since the order Neutron ends up with can depend on the
// order it was given, it iterates to a fixed point.
func OrderGroupsLikeNeutron(ctx context.Context, scs []*spec.Scenario) error {
	dir, err := os.MkdirTemp("", "moat-order-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "order.py")
	if err := os.WriteFile(script, []byte(portGroupOrder), 0o600); err != nil {
		return err
	}
	path := filepath.Join(dir, "spec.json")
	for round := 0; ; round++ {
		b, err := json.Marshal(map[string]any{"scenarios": scs})
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, Python, script, path)
		cmd.Env = append(os.Environ(), "PYTHONHASHSEED=0", "MOAT_NEUTRON_REF="+RefDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("group order helper: %v\n%s", err, stderr.Bytes())
		}
		var orders map[string]map[string][]string
		if err := json.Unmarshal(out, &orders); err != nil {
			return fmt.Errorf("group order helper: %w", err)
		}
		changed := false
		for _, sc := range scs {
			for i := range sc.Ports {
				p := &sc.Ports[i]
				want, ok := orders[sc.Name][p.ID]
				if !ok || slices.Equal(want, p.SecurityGroups) {
					continue
				}
				if !sameSet(want, p.SecurityGroups) {
					return fmt.Errorf("port %s: Neutron sees groups %v, spec has %v", p.ID, want, p.SecurityGroups)
				}
				p.SecurityGroups = want
				changed = true
			}
		}
		if !changed {
			return nil
		}
		if round == 10 {
			return errors.New("port group order does not settle")
		}
	}
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
