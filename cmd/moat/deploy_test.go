package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/testenv"
)

const unitDir = "../../deploy/systemd"

var units = []string{"moat-server.service", "moat-agent.service"}

// unitExec reads a unit's ExecStart with its Environment= defaults
// substituted (${VAR} and $VAR; %H as a host name), split on spaces as
// systemd splits an unquoted $VAR.
func unitExec(t *testing.T, text string) []string {
	t.Helper()
	env := map[string]string{}
	var execStart string
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "Environment="); ok {
			k, val, _ := strings.Cut(v, "=")
			env[k] = strings.ReplaceAll(val, "%H", "compute-1")
		}
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			if execStart != "" {
				t.Fatal("two ExecStart lines")
			}
			execStart = v
		}
	}
	if execStart == "" {
		t.Fatal("no ExecStart")
	}
	re := regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
	expanded := re.ReplaceAllStringFunc(execStart, func(m string) string {
		name := strings.Trim(m, "${}")
		v, ok := env[name]
		if !ok {
			t.Errorf("ExecStart uses $%s, which no Environment= line defaults", name)
		}
		return v
	})
	return strings.Fields(expanded)
}

// TestSystemdUnits: each unit starts a moat subcommand that exists, with
// flags it has, and systemd's own verifier accepts the unit (with the
// binary path pointed at a real build).
func TestSystemdUnits(t *testing.T) {
	testenv.RequireTools(t, "systemd-analyze")
	bin := moatbin.Build(t)
	dir := t.TempDir()
	for _, u := range units {
		t.Run(u, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(unitDir, u))
			if err != nil {
				t.Fatal(err)
			}
			args := unitExec(t, string(b))
			if args[0] != "/usr/local/bin/moat" {
				t.Fatalf("ExecStart runs %s, want /usr/local/bin/moat (docs/deploy.md installs it there)", args[0])
			}
			sub, rest, err := rootCmd.Find(args[1:])
			if err != nil || sub == rootCmd {
				t.Fatalf("moat %s: no such subcommand (%v)", args[1], err)
			}
			for _, a := range rest {
				name, ok := strings.CutPrefix(a, "--")
				if !ok {
					continue
				}
				name, _, _ = strings.Cut(name, "=")
				if sub.Flags().Lookup(name) == nil {
					t.Errorf("moat %s has no flag --%s", sub.Name(), name)
				}
			}
			path := filepath.Join(dir, u)
			if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte("/usr/local/bin/moat"), []byte(bin)), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd := exec.Command("systemd-analyze", "verify", path)
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, stderr.String())
			}
		})
	}
}
