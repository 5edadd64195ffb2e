package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/netlog"
)

const (
	dropLine   = `{"time":"2026-12-03T14:35:32.568Z","host":"h1","port_id":"p-b","direction":"ingress","ethertype":"IPv4","protocol":1,"src":"192.168.1.12","dst":"192.168.1.13","icmp_type":8,"icmp_code":0,"verdict":"DROP","protection":"default-drop"}`
	acceptLine = `{"time":"2026-12-03T14:35:33Z","host":"h1","port_id":"p-a","direction":"ingress","ethertype":"IPv6","protocol":6,"src":"fd00::1","src_port":40000,"dst":"fd00::2","dst_port":22,"verdict":"ACCEPT","security_group_rule_id":"r1"}`
)

func TestLogsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.jsonl")
	if err := os.WriteFile(path, []byte(dropLine+"\nnot json\n"+acceptLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, newLogsCmd, "", "--file", path)
	want := "2026-12-03T14:35:32.568Z h1 port p-b ingress IPv4 icmp 192.168.1.12 > 192.168.1.13 type 8/0 DROP by default-drop\n" +
		"2026-12-03T14:35:33.000Z h1 port p-a ingress IPv6 tcp [fd00::1]:40000 > [fd00::2]:22 ACCEPT rule r1\n"
	if err != nil || out != want {
		t.Errorf("moat logs: %v\n%s\nwant\n%s", err, out, want)
	}
	out, err = runCmd(t, newLogsCmd, "", "--file", path, "--port", "p-a", "--json")
	if err != nil || out != acceptLine+"\n" {
		t.Errorf("moat logs --port --json: %v %q", err, out)
	}

	// --follow prints what the agent appends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newLogsCmd()
	var buf syncBuffer
	cmd.SetOut(&buf)
	cmd.SetArgs([]string{"--file", path, "--follow", "--json", "--port", "p-b"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(strings.Replace(dropLine, "32.568Z", "40Z", 1) + "\n")
	fh.Close()
	deadline := time.Now().Add(3 * time.Second)
	for strings.Count(buf.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, `14:35:40Z`) {
		t.Errorf("followed: %q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestLogsServer(t *testing.T) {
	srv := apitest.Start(t, apitest.Config{Auth: apitest.NoAuth})
	p := netlog.NewPoster([]string{"http://127.0.0.1:1", srv.URL}, "h1", nil, nil) // a dead replica first: tried in turn
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.Add(netlog.Event{Time: time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC), PortID: "p1", Direction: "egress", Ethertype: "IPv4",
		Protocol: 17, Src: "10.0.0.1", SrcPort: 5353, Dst: "10.0.0.2", DstPort: 53, Verdict: "ACCEPT", SecurityGroupRuleID: "r9"})
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if out, err = runCmd(t, newLogsCmd, "", "--server", srv.URL, "--port", "p1"); err != nil {
			t.Fatal(err)
		}
		if out != "" {
			break
		}
	}
	if want := "2026-12-03T14:00:00.000Z h1 port p1 egress IPv4 udp 10.0.0.1:5353 > 10.0.0.2:53 ACCEPT rule r9\n"; out != want {
		t.Errorf("moat logs --server: %q, want %q", out, want)
	}
}
