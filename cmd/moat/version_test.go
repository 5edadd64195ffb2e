package main

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-03T09:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		name, stamped string
		bi            *debug.BuildInfo
		ok            bool
		want          string
	}{
		{"stamped by make", "v0.3.0-12-gabc", vcs, true, "v0.3.0-12-gabc"},
		{"plain go build in a dirty tree", "", vcs, true, "devel-0123456789ab-dirty"},
		{"go install of a tagged module", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true, "v1.2.3"},
		{"no build info", "", nil, false, "devel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readBuildInfo(tc.stamped, tc.bi, tc.ok)
			if got.Version != tc.want || got.Go == "" || got.Platform == "" {
				t.Errorf("got %+v, want version %q", got, tc.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"version", "--json"}} {
		var out bytes.Buffer
		rootCmd.SetOut(&out)
		rootCmd.SetArgs(args)
		if err := rootCmd.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if len(args) == 1 {
			if !strings.HasPrefix(out.String(), "moat ") || !strings.Contains(out.String(), "go1.") {
				t.Errorf("%v: %q", args, out.String())
			}
			continue
		}
		var info buildInfo
		if err := json.Unmarshal(out.Bytes(), &info); err != nil || info.Version == "" || info.Go == "" {
			t.Errorf("%v: %q: %v", args, out.String(), err)
		}
	}
	rootCmd.SetArgs(nil)
	rootCmd.SetOut(nil)
}
