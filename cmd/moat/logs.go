package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/netlog"
)

func init() {
	rootCmd.AddCommand(newLogsCmd())
}

// logsFlags are the flags of `moat logs`.
type logsFlags struct {
	port, file, server, tokenFile string
	follow, json                  bool
}

func newLogsCmd() *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print the packets security-group log rules reported (network logs)",
		Long: `Print the packets the agents' security-group log rules reported (openstack network log
create ...; docs/logging.md): from this host's agent's file (--file, the agent's --log-file),
or the server's latest events of every host (--server URL; an admin's token in --token-file or
OS_TOKEN unless the server runs without identity).

  moat logs --follow
  moat logs --server http://controller:9696 --port PORT_ID --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.server != "" && cmd.Flags().Changed("file") {
				return fmt.Errorf("--file and --server exclude each other")
			}
			print := func(ev netlog.Event, raw []byte) error {
				if f.port != "" && ev.PortID != f.port {
					return nil
				}
				if f.json {
					if raw == nil {
						raw, _ = json.Marshal(ev)
					}
					_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", raw)
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), formatEvent(ev))
				return err
			}
			if f.server != "" {
				token := os.Getenv("OS_TOKEN")
				if f.tokenFile != "" {
					var err error
					if token, err = readToken(f.tokenFile); err != nil {
						return err
					}
				}
				return serverLogs(cmd.Context(), f, token, print)
			}
			return fileLogs(cmd.Context(), f, print)
		},
	}
	cmd.Flags().StringVar(&f.port, "port", "", "only the events of this port (id)")
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "keep printing events as they come")
	cmd.Flags().BoolVar(&f.json, "json", false, "print each event as its JSON line")
	cmd.Flags().StringVar(&f.file, "file", "/var/lib/moat/log-events.jsonl", "the agent's events file (its --log-file)")
	cmd.Flags().StringVar(&f.server, "server", "", "read the server's latest events instead (http://HOST:9696)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "with --server, a file holding the token to send (default: $OS_TOKEN)")
	return cmd
}

// formatEvent is one event as a line for people.
func formatEvent(ev netlog.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s port %s %s %s", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Host, ev.PortID, ev.Direction, ev.Ethertype)
	proto := "?"
	if ev.Protocol >= 0 && ev.Protocol <= 255 {
		proto = hybrid.IptablesProtocolName(ev.Protocol)
	}
	addr := func(a string, p int) string {
		if p == 0 {
			return a
		}
		if strings.Contains(a, ":") {
			return fmt.Sprintf("[%s]:%d", a, p)
		}
		return fmt.Sprintf("%s:%d", a, p)
	}
	fmt.Fprintf(&b, " %s %s > %s", proto, addr(ev.Src, ev.SrcPort), addr(ev.Dst, ev.DstPort))
	if ev.ICMPType != nil && ev.ICMPCode != nil {
		fmt.Fprintf(&b, " type %d/%d", *ev.ICMPType, *ev.ICMPCode)
	}
	b.WriteString(" " + ev.Verdict)
	switch {
	case ev.SecurityGroupRuleID != "":
		ids := ev.SecurityGroupRuleIDs
		if len(ids) == 0 {
			ids = []string{ev.SecurityGroupRuleID}
		}
		b.WriteString(" rule " + strings.Join(ids, ","))
	case ev.Protection != "":
		b.WriteString(" by " + ev.Protection)
	}
	return b.String()
}

// fileLogs prints the events of the agent's file, and with --follow those
// appended later (a file cut shorter, rotated, is read from its start).
func fileLogs(ctx context.Context, f logsFlags, print func(netlog.Event, []byte) error) error {
	fh, err := os.Open(f.file)
	if err != nil {
		return fmt.Errorf("--file: %w", err)
	}
	defer fh.Close()
	r := bufio.NewReaderSize(fh, 64<<10)
	var pending []byte
	var offset int64
	for {
		line, err := r.ReadBytes('\n')
		offset += int64(len(line))
		pending = append(pending, line...)
		if err == nil {
			var ev netlog.Event
			raw := []byte(strings.TrimSpace(string(pending)))
			pending = pending[:0]
			if json.Unmarshal(raw, &ev) != nil {
				continue // not an event (a torn line): skipped
			}
			if err := print(ev, raw); err != nil {
				return err
			}
			continue
		}
		if err != io.EOF {
			return fmt.Errorf("--file: %w", err)
		}
		if !f.follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		if st, err := fh.Stat(); err == nil && st.Size() < offset {
			if _, err := fh.Seek(0, io.SeekStart); err != nil {
				return err
			}
			offset, pending = 0, pending[:0]
			r.Reset(fh)
		}
	}
}

// serverLogs prints the server's latest events; with --follow it asks
// again every second and prints those newer than the last printed.
func serverLogs(ctx context.Context, f logsFlags, token string, print func(netlog.Event, []byte) error) error {
	u := strings.TrimSuffix(f.server, "/") + "/v2.0/moat/log-events"
	if f.port != "" {
		u += "?port_id=" + url.QueryEscape(f.port)
	}
	var last time.Time
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var body netlog.EventsBody
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
		}
		if err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		for _, ev := range body.Events {
			if !ev.Time.After(last) {
				continue
			}
			if err := print(ev, nil); err != nil {
				return err
			}
			last = ev.Time
		}
		if !f.follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
