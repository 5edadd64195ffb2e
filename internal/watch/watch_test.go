package watch_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/moat-sg/moat/internal/apitest"
	"github.com/moat-sg/moat/internal/hostview"
	"github.com/moat-sg/moat/internal/metrics"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/watch"
)

const wait = 10 * time.Second

// env is a server with a network and helpers to call it as admin.
type env struct {
	t   *testing.T
	srv *apitest.Server
	net string
	hdr map[string]string // the admin's headers (--auth headers)
}

var adminHeaders = map[string]string{"X-User-Id": "admin", "X-Project-Id": "admin-project", "X-Roles": "admin"}

func newEnv(t *testing.T, cfg apitest.Config) *env {
	t.Helper()
	cfg.Quotas = map[string]int64{"security_group_rule": -1, "port": -1, "security_group": -1}
	if cfg.Watch.Bookmark == 0 {
		cfg.Watch.Bookmark = time.Hour // tests that want bookmarks ask
	}
	cfg.Watch.Poll = 50 * time.Millisecond
	e := &env{t: t, srv: apitest.Start(t, cfg)}
	if cfg.Auth == apitest.Headers {
		e.hdr = adminHeaders
	}
	n := e.call("POST", "networks", map[string]any{"network": map[string]any{"name": "n"}}, 201)
	e.net = n["network"].(map[string]any)["id"].(string)
	e.call("POST", "subnets", map[string]any{"subnet": map[string]any{"network_id": e.net, "cidr": "10.0.0.0/16", "ip_version": 4}}, 201)
	return e
}

// call makes an admin request (noauth) and checks its status.
func (e *env) call(method, path string, body any, want int) map[string]any {
	e.t.Helper()
	return callAs(e.t, e.srv.URL, e.hdr, method, path, body, want)
}

func callAs(t *testing.T, base string, hdr map[string]string, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+"/v2.0/"+path, rd)
	req.Close = true // tests cut the server's connections
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out)
	}
	return out
}

func (e *env) group(name string) string {
	e.t.Helper()
	g := e.call("POST", "security-groups", map[string]any{"security_group": map[string]any{"name": name}}, 201)
	return g["security_group"].(map[string]any)["id"].(string)
}

func (e *env) rule(group string, attrs map[string]any) string {
	e.t.Helper()
	r := map[string]any{"security_group_id": group, "direction": "ingress", "ethertype": "IPv4"}
	for k, v := range attrs {
		r[k] = v
	}
	out := e.call("POST", "security-group-rules", map[string]any{"security_group_rule": r}, 201)
	return out["security_group_rule"].(map[string]any)["id"].(string)
}

func (e *env) port(host, ip string, groups ...string) string {
	e.t.Helper()
	p := e.call("POST", "ports", map[string]any{"port": map[string]any{"network_id": e.net, "binding:host_id": host,
		"security_groups": groups, "fixed_ips": []any{map[string]any{"ip_address": ip}}}}, 201)
	return p["port"].(map[string]any)["id"].(string)
}

func (e *env) setIP(port, ip string) {
	e.t.Helper()
	e.call("PUT", "ports/"+port, map[string]any{"port": map[string]any{"fixed_ips": []any{map[string]any{"ip_address": ip}}}}, 200)
}

func (e *env) latest() int64 {
	e.t.Helper()
	var rev int64
	if err := e.srv.Store.Read(context.Background(), func(tx *store.Tx) error {
		var err error
		rev, err = tx.LatestRevision(context.Background())
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// stream is a raw watch stream: its events, one per line.
type stream struct {
	t      *testing.T
	events chan hostview.Event
	cancel func()
}

func (e *env) watch(host string, rev int64, hdr map[string]string) *stream {
	e.t.Helper()
	if hdr == nil {
		hdr = e.hdr
	}
	s, status := openStream(e.t, e.srv.URL, host, rev, hdr)
	if status != http.StatusOK {
		e.t.Fatalf("watch %s: status %d", host, status)
	}
	return s
}

func openStream(t *testing.T, base, host string, rev int64, hdr map[string]string) (*stream, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v2.0/moat/hosts/%s/watch?revision=%d", base, url.PathEscape(host), rev), nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", host, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	s := &stream{t: t, events: make(chan hostview.Event, 1000), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, hostview.MaxLineBytes)
		for sc.Scan() {
			var ev hostview.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("bad line %q: %v", sc.Text(), err)
				return
			}
			s.events <- ev
		}
	}()
	t.Cleanup(cancel)
	return s, resp.StatusCode
}

// next returns the next event, failing after wait.
func (s *stream) next() hostview.Event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatalf("stream ended")
		}
		return ev
	case <-time.After(wait):
		s.t.Fatalf("no event within %s", wait)
	}
	return hostview.Event{}
}

// complete reads the frames of one revision (a snapshot or delta) and
// returns them merged; bookmarks before it are skipped.
func (s *stream) complete() (string, int64, hostview.Delta) {
	s.t.Helper()
	var d hostview.Delta
	for {
		ev := s.next()
		if ev.Type == hostview.EventBookmark {
			continue
		}
		d.Merge(&ev.Delta)
		if !ev.More {
			return ev.Type, ev.Revision, d
		}
	}
}

// quiet fails if a snapshot or delta arrives within d.
func (s *stream) quiet(d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-s.events:
			if ev.Type != hostview.EventBookmark {
				s.t.Fatalf("got %s at revision %d (%+v), want nothing", ev.Type, ev.Revision, ev.Delta)
			}
		case <-deadline:
			return
		}
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func portID(p hostview.Port) string       { return p.ID }
func groupID(g hostview.Group) string     { return g.ID }
func membersID(m hostview.Members) string { return m.Group }

// TestSnapshotThenDeltas: a new stream gets the host's view — its ports,
// their network and segment, their groups with rules, the members of the
// groups the rules name — then a delta per change that concerns it.
func TestSnapshotThenDeltas(t *testing.T) {
	e := newEnv(t, apitest.Config{})
	web, db := e.group("web"), e.group("db")
	e.rule(web, map[string]any{"protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432, "remote_group_id": db})
	p1 := e.port("h1", "10.0.0.11", web)
	e.port("h2", "10.0.0.21", db)

	s := e.watch("h1", 0, nil)
	typ, rev, d := s.complete()
	if typ != hostview.EventSnapshot || rev != e.latest() {
		t.Fatalf("first event %s at %d, want a snapshot at %d", typ, rev, e.latest())
	}
	if got := ids(d.Ports, portID); !slices.Equal(got, []string{p1}) {
		t.Errorf("snapshot ports %v, want [%s]", got, p1)
	}
	if got := ids(d.Groups, groupID); !slices.Equal(got, []string{web}) {
		t.Errorf("snapshot groups %v, want [web]", got)
	}
	if len(d.Members) != 1 || d.Members[0].Group != db || !slices.Equal(d.Members[0].IPv4, []string{"10.0.0.21"}) {
		t.Errorf("snapshot members %+v, want db's 10.0.0.21 (on h2)", d.Members)
	}
	if len(d.Networks) != 1 || d.Networks[0].ID != e.net || d.Networks[0].NetworkType == "" || d.Networks[0].MTU == 0 {
		t.Errorf("snapshot networks %+v", d.Networks)
	}

	r2 := e.rule(web, map[string]any{"protocol": "icmp"})
	typ, rev2, d := s.complete()
	// (New groups come with their two egress rules.)
	if typ != hostview.EventDelta || rev2 <= rev || len(d.Groups) != 1 || len(d.Groups[0].Rules) != 4 || d.Groups[0].Rules[3].ID != r2 {
		t.Errorf("after a rule create: %s at %d: %+v", typ, rev2, d)
	}
	p3 := e.port("h1", "10.0.0.12", db)
	_, _, d = s.complete()
	if got := ids(d.Ports, portID); !slices.Equal(got, []string{p3}) || !slices.Contains(ids(d.Groups, groupID), db) {
		t.Errorf("after a port bound here: ports %v groups %v", got, ids(d.Groups, groupID))
	}
	// db's members now include h1's own new port: the members travel too.
	if got := ids(d.Members, membersID); !slices.Equal(got, []string{db}) {
		t.Errorf("members after the port joined db: %v", got)
	}
	e.call("DELETE", "ports/"+p3, nil, 204)
	_, _, d = s.complete()
	if !slices.Equal(d.RemovedPorts, []string{p3}) || !slices.Equal(d.RemovedGroups, []string{db}) {
		t.Errorf("after the port left: %+v", d)
	}
}

// TestAddressChangeReachesOnlyInterestedHosts: a port's address change on
// h2 reaches h1, whose rules name the port's group, and not h3, whose do
// not; h3's stream stays quiet (its bookmark moves on).
func TestAddressChangeReachesOnlyInterestedHosts(t *testing.T) {
	e := newEnv(t, apitest.Config{Watch: watch.Config{Bookmark: 100 * time.Millisecond}})
	web, db, other := e.group("web"), e.group("db"), e.group("other")
	e.rule(web, map[string]any{"remote_group_id": db})
	e.rule(other, map[string]any{"remote_group_id": other})
	e.port("h1", "10.0.0.11", web)
	p2 := e.port("h2", "10.0.0.21", db)
	e.port("h3", "10.0.0.31", other)
	s1, s2, s3 := e.watch("h1", 0, nil), e.watch("h2", 0, nil), e.watch("h3", 0, nil)
	for _, s := range []*stream{s1, s2, s3} {
		if typ, _, _ := s.complete(); typ != hostview.EventSnapshot {
			t.Fatalf("first event %s", typ)
		}
	}
	reads := func(h string) int64 { return e.srv.Watch.Host(h).Reads }
	before3 := reads("h3")
	e.setIP(p2, "10.0.0.22")
	rev := e.latest()
	typ, r, d := s1.complete()
	if typ != hostview.EventDelta || r != rev || len(d.Ports) != 0 || len(d.Members) != 1 || !slices.Equal(d.Members[0].IPv4, []string{"10.0.0.22"}) {
		t.Errorf("h1 got %s at %d: %+v; want db's new member at %d", typ, r, d, rev)
	}
	if _, _, d := s2.complete(); len(d.Ports) != 1 || !slices.Equal(d.Ports[0].FixedIPs, []string{"10.0.0.22"}) {
		t.Errorf("h2 got %+v, want its port's new address", d)
	}
	s3.quiet(300 * time.Millisecond)
	if reads("h3") != before3 {
		t.Errorf("h3's stream read its host (%d -> %d) for a change that does not concern it", before3, reads("h3"))
	}
	if chain, _ := e.srv.Watch.Rounds(); chain == 0 {
		t.Errorf("no stream round walked the shared chain")
	}
	// h3's bookmark passes the change: it resumes after it.
	for {
		ev := s3.next()
		if ev.Type == hostview.EventBookmark && ev.Revision == rev {
			break
		}
	}
}

// TestResumeWithoutSnapshot: an agent that reconnects with the revision it
// applied gets one delta to the present, no snapshot, and its view then
// equals a fresh snapshot's.
func TestResumeWithoutSnapshot(t *testing.T) {
	e := newEnv(t, apitest.Config{})
	web, db := e.group("web"), e.group("db")
	e.rule(web, map[string]any{"remote_group_id": db})
	r1 := e.rule(web, map[string]any{"protocol": "tcp"})
	e.port("h1", "10.0.0.11", web)
	p2 := e.port("h2", "10.0.0.21", db)
	s := e.watch("h1", 0, nil)
	_, rev, d := s.complete()
	view := hostview.New("h1")
	view.Apply(&d)
	s.cancel()

	// While it is away: a rule deleted (the log names only the rule), a
	// member's address changes, a new port bound here, one port of h2
	// moves here, and things elsewhere.
	e.call("DELETE", "security-group-rules/"+r1, nil, 204)
	e.setIP(p2, "10.0.0.29")
	p3 := e.port("h1", "10.0.0.13", db)
	// (p1, which carries web, does not change: web must come because of
	// the deleted rule alone.)
	e.port("h9", "10.0.0.99", e.group("elsewhere"))

	s = e.watch("h1", rev, nil)
	typ, rev2, d := s.complete()
	if typ != hostview.EventDelta || rev2 != e.latest() {
		t.Fatalf("resume: %s at %d, want a delta at %d", typ, rev2, e.latest())
	}
	view.Apply(&d)
	fresh := e.watch("h1", 0, nil)
	_, _, fd := fresh.complete()
	want := hostview.New("h1")
	want.Apply(&fd)
	if !hostview.Equal(view, want) || !hostview.Equal(want, view) {
		t.Errorf("resumed view differs from a snapshot:\n got %+v\nwant %+v", d, fd)
	}
	if _, ok := view.Ports[p3]; !ok {
		t.Errorf("the new port is missing after the resume")
	}
	// Resuming at the present is an empty delta.
	s = e.watch("h1", rev2, nil)
	if typ, r, d := s.complete(); typ != hostview.EventDelta || r != rev2 || !d.Empty() {
		t.Errorf("resume at the present: %s at %d %+v", typ, r, d)
	}
}

// TestBookmarks: an idle stream gets bookmarks at the interval, with the
// revision the server has followed the log to.
func TestBookmarks(t *testing.T) {
	e := newEnv(t, apitest.Config{Watch: watch.Config{Bookmark: 50 * time.Millisecond}})
	e.port("h1", "10.0.0.11", e.group("g"))
	s := e.watch("h1", 0, nil)
	_, rev, _ := s.complete()
	start := time.Now()
	for n := 0; n < 3; {
		ev := s.next()
		if ev.Type != hostview.EventBookmark || ev.Revision != rev {
			t.Fatalf("got %s at %d, want bookmarks at %d", ev.Type, ev.Revision, rev)
		}
		n++
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("3 bookmarks took %s at a 50ms interval", el)
	}
}

// TestResyncAfterCompaction: a revision older than the compacted log
// holds gets an explicit resync, then a snapshot; so does a revision from
// the future (a database restored from a backup).
func TestResyncAfterCompaction(t *testing.T) {
	e := newEnv(t, apitest.Config{})
	g := e.group("g")
	e.port("h1", "10.0.0.11", g)
	s := e.watch("h1", 0, nil)
	_, rev, _ := s.complete()
	s.cancel()
	e.rule(g, map[string]any{"protocol": "tcp"})
	e.rule(g, map[string]any{"protocol": "udp"})
	n, err := e.srv.Watch.Compact(context.Background(), -time.Hour) // everything but the newest change
	if err != nil || n == 0 {
		t.Fatalf("compact: %d, %v", n, err)
	}
	for _, from := range []int64{rev, e.latest() + 100} {
		s = e.watch("h1", from, nil)
		ev := s.next()
		if ev.Type != hostview.EventResync || ev.Reason == "" {
			t.Fatalf("from %d: got %s, want a resync", from, ev.Type)
		}
		if typ, r, d := s.complete(); typ != hostview.EventSnapshot || r != e.latest() || len(d.Groups) != 1 || len(d.Groups[0].Rules) != 4 {
			t.Errorf("from %d, after the resync: %s at %d %+v", from, typ, r, d)
		}
		s.cancel()
	}
	// The newest revision is kept: an agent there resumes.
	s = e.watch("h1", e.latest(), nil)
	if typ, _, _ := s.complete(); typ != hostview.EventDelta {
		t.Errorf("at the newest revision: %s, want a delta", typ)
	}
}

// TestAgentCredentials: an agent token may watch and report its own host
// only, and nothing else of the API; a project member may not watch at
// all; a report writes the port's status (visible on the port) without a
// change-log entry, and one naming another host's port is refused whole.
func TestAgentCredentials(t *testing.T) {
	h1 := map[string]string{"X-Auth-Token": "token-of-h1-0123456789"}
	e := newEnv(t, apitest.Config{Auth: apitest.Headers, AgentTokens: map[string]string{
		"h1": h1["X-Auth-Token"], "h2": "token-of-h2-0123456789"}})
	g := e.group("g")
	p1, p2 := e.port("h1", "10.0.0.11", g), e.port("h2", "10.0.0.21", g)
	member := map[string]string{"X-User-Id": "u", "X-Project-Id": "admin-project", "X-Roles": "member"}
	service := map[string]string{"X-User-Id": "nova", "X-Project-Id": "service", "X-Roles": "service"}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		host string
		want int
	}{
		{"own host", h1, "h1", 200},
		{"another host", h1, "h2", 403},
		{"a host without a token", h1, "h3", 403},
		{"a project member", member, "h1", 403},
		{"no credentials", map[string]string{}, "h1", 401},
		{"a bad token is not an agent's (and headers mode wants X-User-Id)", map[string]string{"X-Auth-Token": "token-of-nobody-0123456789"}, "h1", 401},
		{"the service role", service, "h2", 200},
		{"an admin", adminHeaders, "h2", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, status := openStream(t, e.srv.URL, tc.host, 0, tc.hdr)
			if status != tc.want {
				t.Fatalf("watch %s: %d, want %d", tc.host, status, tc.want)
			}
			if s != nil {
				if typ, _, _ := s.complete(); typ != hostview.EventSnapshot {
					t.Errorf("got %s", typ)
				}
				s.cancel()
			}
		})
	}
	// The agent token is good for nothing else.
	callAs(t, e.srv.URL, h1, "GET", "ports", nil, 403)
	callAs(t, e.srv.URL, h1, "GET", "moat/hosts/h2", nil, 403)
	callAs(t, e.srv.URL, h1, "POST", "moat/hosts/h2/report", map[string]any{"revision": 1}, 403)

	rev := e.latest()
	report := func(host string, body any, want int) {
		t.Helper()
		callAs(t, e.srv.URL, h1, "POST", "moat/hosts/"+host+"/report", body, want)
	}
	status := func(id string) (string, any) {
		t.Helper()
		p := e.call("GET", "ports/"+id, nil, 200)["port"].(map[string]any)
		return p["status"].(string), p["moat:status_reason"]
	}
	report("h1", map[string]any{"revision": rev, "ports": []any{
		map[string]any{"id": p1, "status": "ERROR", "reason": "wiring: no such network"},
		map[string]any{"id": p2, "status": "ACTIVE"}}}, 403)
	if st, _ := status(p2); st == "ACTIVE" {
		t.Errorf("h1's token set h2's port ACTIVE")
	}
	if st, _ := status(p1); st == "ERROR" {
		t.Errorf("a refused report was half applied")
	}
	report("h1", map[string]any{"revision": rev, "ports": []any{
		map[string]any{"id": p1, "status": "ERROR", "reason": "wiring: no such network"},
		map[string]any{"id": "gone-port", "status": "ACTIVE"}}}, 204)
	if st, why := status(p1); st != "ERROR" || why != "wiring: no such network" {
		t.Errorf("port after the report: %s %v", st, why)
	}
	if e.latest() != rev {
		t.Errorf("a report added to the change log (%d -> %d): it would wake the watchers", rev, e.latest())
	}
	host := callAs(t, e.srv.URL, h1, "GET", "moat/hosts/h1", nil, 200)["host"].(map[string]any)
	if host["enforced_revision"] != float64(rev) || host["reported_at"] == nil {
		t.Errorf("host h1: %v", host)
	}
	for _, bad := range []any{
		map[string]any{"revision": 1, "ports": []any{map[string]any{"id": p1, "status": "WIRED"}}},
		map[string]any{"revision": 1, "ports": []any{map[string]any{"id": p1, "status": "ACTIVE", "reason": "why"}}},
		map[string]any{"revision": -1},
		map[string]any{"revision": "x"},
		map[string]any{"revisions": 1},
		[]any{1},
	} {
		report("h1", bad, 400)
	}
	callAs(t, e.srv.URL, h1, "GET", "moat/hosts/h1/watch?revision=-3", nil, 400)
	callAs(t, e.srv.URL, h1, "GET", "moat/hosts/h1/watch?revision=abc", nil, 400)
}

// slowFixture is a server whose host "slow" has a reader that sent its
// request and never reads, and whose host "fast" reads, both carrying a
// group of 2,000 rules that every change sends whole (~300 KB).
func slowFixture(t *testing.T, writeTimeout time.Duration) (e *env, group string, fast *stream) {
	e = newEnv(t, apitest.Config{Watch: watch.Config{WriteTimeout: writeTimeout}})
	g := e.group("big")
	rules := make([]any, 2000)
	for i := range rules {
		rules[i] = map[string]any{"security_group_id": g, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
			"port_range_min": 1000 + i, "port_range_max": 1000 + i}
	}
	e.call("POST", "security-group-rules", map[string]any{"security_group_rules": rules}, 201)
	e.port("slow", "10.0.0.11", g)
	e.port("fast", "10.0.0.12", g)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "GET /v2.0/moat/hosts/slow/watch HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	fast = e.watch("fast", 0, nil)
	fast.complete()
	waitFor(t, "the slow reader's stream", func() bool { return e.srv.Watch.Host("slow").Watches == 1 })
	return e, g, fast
}

// TestSlowReaderHoldsUpNobody: a reader that stopped reading, never cut
// here (its write timeout is an hour), fills its connection and stays
// stuck; the other host interested in the same changes gets every one.
func TestSlowReaderHoldsUpNobody(t *testing.T) {
	e, g, fast := slowFixture(t, time.Hour)
	for i := 0; i < 20; i++ { // 20 × 300 KB: far more than the slow connection's buffers
		e.rule(g, map[string]any{"protocol": "udp", "port_range_min": 10 + i, "port_range_max": 10 + i})
		rev := e.latest()
		if _, r, _ := fast.complete(); r != rev {
			t.Fatalf("fast reader got revision %d, want %d", r, rev)
		}
	}
	if st := e.srv.Watch.Host("slow"); st.Watches != 1 || st.SentRevision >= e.latest() {
		t.Errorf("the slow reader: %+v; want its stream open and stuck behind revision %d", st, e.latest())
	}
}

// TestSlowReaderIsCut: a stream whose frame cannot be written within the
// write timeout is cut (its agent reconnects and resumes).
func TestSlowReaderIsCut(t *testing.T) {
	e, g, fast := slowFixture(t, 300*time.Millisecond)
	for i := 0; e.srv.Watch.Host("slow").Watches != 0; i++ {
		if i == 60 {
			t.Fatalf("the slow reader was never cut: %+v", e.srv.Watch.Host("slow"))
		}
		e.rule(g, map[string]any{"protocol": "udp", "port_range_min": 10 + i, "port_range_max": 10 + i})
		fast.complete()
	}
}

// TestCloseEndsStreams: a server shutting down ends its streams (they are
// never idle, so a graceful shutdown would otherwise wait for them).
func TestCloseEndsStreams(t *testing.T) {
	e := newEnv(t, apitest.Config{})
	e.port("h1", "10.0.0.11", e.group("g"))
	s := e.watch("h1", 0, nil)
	s.complete()
	e.srv.Watch.Close()
	select {
	case _, ok := <-s.events:
		if ok {
			t.Fatalf("an event after Close")
		}
	case <-time.After(wait):
		t.Fatalf("the stream outlived Close")
	}
}

// TestChangeEnforcedLatency: a delta sent to an agent is timed until the
// agent reports a revision at or past it, once; a report that does not
// reach it observes nothing.
func TestChangeEnforcedLatency(t *testing.T) {
	e := newEnv(t, apitest.Config{})
	web := e.group("web")
	e.port("h1", "10.0.0.11", web)
	s := e.watch("h1", 0, nil)
	_, rev, _ := s.complete()
	report := func(rev int64) {
		t.Helper()
		callAs(t, e.srv.URL, nil, "POST", "moat/hosts/h1/report", map[string]any{"revision": rev}, 204)
	}
	report(rev) // the snapshot: not a change's latency
	count := func() uint64 {
		m := &dto.Metric{}
		if err := metrics.ChangeEnforced.Write(m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	n0 := count()
	e.rule(web, map[string]any{"protocol": "icmp"})
	typ, rev2, _ := s.complete()
	if typ != hostview.EventDelta {
		t.Fatalf("after a rule create: %s", typ)
	}
	report(rev2 - 1)
	if got := count(); got != n0 {
		t.Errorf("a report short of the delta observed %d latencies", got-n0)
	}
	report(rev2)
	report(rev2) // again: nothing left in flight
	if got := count(); got != n0+1 {
		t.Errorf("observed %d latencies after the delta was reported enforced, want 1", got-n0)
	}
}
