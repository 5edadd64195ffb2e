package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time by the Makefile (-ldflags "-X
// main.version=$(git describe)"); empty in a plain `go build`, where the
// VCS stamp Go records stands in.
var version string

// buildInfo is what `moat version` reports.
type buildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func readBuildInfo(stamped string, bi *debug.BuildInfo, ok bool) buildInfo {
	out := buildInfo{Version: stamped, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				out.Revision = s.Value
			case "vcs.time":
				out.Time = s.Value
			case "vcs.modified":
				out.Modified = s.Value == "true"
			}
		}
		if out.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			out.Version = bi.Main.Version
		}
	}
	if out.Version == "" {
		out.Version = "devel"
		if len(out.Revision) >= 12 {
			out.Version += "-" + out.Revision[:12]
		}
		if out.Modified {
			out.Version += "-dirty"
		}
	}
	return out
}

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print moat's version, the commit it was built from and the Go that built it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi, ok := debug.ReadBuildInfo()
			info := readBuildInfo(version, bi, ok)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "moat %s", info.Version)
			if info.Revision != "" {
				fmt.Fprintf(cmd.OutOrStdout(), " (commit %s", info.Revision)
				if info.Modified {
					fmt.Fprint(cmd.OutOrStdout(), ", modified")
				}
				fmt.Fprint(cmd.OutOrStdout(), ")")
			}
			fmt.Fprintf(cmd.OutOrStdout(), ", %s, %s\n", info.Go, info.Platform)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object")
	rootCmd.AddCommand(cmd)
}
