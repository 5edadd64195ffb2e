package apibench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/moatbin"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/store/pgtest"
)

// startReplicas starts two API servers on one fresh PostgreSQL database,
// at once (they migrate it in turn), and a bench client of the first.
func startReplicas(t *testing.T) ([]*Server, *bench) {
	t.Helper()
	ctx := context.Background()
	srvs, err := StartReplicas(ctx, pgtest.Start(t).NewDatabase(t), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range srvs {
			s.Close()
		}
	})
	b, err := newBench(Config{URL: srvs[0].URL, ReplicaURLs: []string{srvs[1].URL}, Target: "replicas", Groups: 2, Concurrency: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	if err := b.setup(ctx); err != nil {
		t.Fatal(err)
	}
	return srvs, b
}

func createdID(t *testing.T, r response) string {
	t.Helper()
	var out struct {
		Rule struct {
			ID string `json:"id"`
		} `json:"security_group_rule"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.Rule.ID == "" {
		t.Fatalf("create answer %s: %v", r.body, err)
	}
	return out.Rule.ID
}

// TestReplicasServeOneDatabase: two servers started at once on one
// PostgreSQL both serve the API; rules written through one are read
// through the other, and appear in the change log as the other server's
// store follows it (WaitRevision, ChangesSince), each once, in order.
func TestReplicasServeOneDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srvs, b := startReplicas(t)
	other := srvs[1].Store()
	// The setup's changes (groups, their egress rules) numbered first.
	if err := srvs[0].Store().SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	var start int64
	if err := other.Read(ctx, func(tx *store.Tx) (err error) { start, err = tx.LatestRevision(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	revisions := func() []int {
		var out []int
		for _, g := range b.groups {
			r, err := b.doAt(ctx, srvs[1].URL, http.MethodGet, "/v2.0/security-groups/"+g, b.member, nil)
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("get group %s: %v %s", g, err, r.body)
			}
			var out1 struct {
				SG struct {
					Revision int `json:"revision_number"`
				} `json:"security_group"`
			}
			if err := json.Unmarshal(r.body, &out1); err != nil {
				t.Fatal(err)
			}
			out = append(out, out1.SG.Revision)
		}
		return out
	}
	before := revisions()
	const path = "/v2.0/security-group-rules"
	var ids []string
	for i := 0; i < 5; i++ {
		r, err := b.doAt(ctx, srvs[0].URL, http.MethodPost, path, b.member, b.ruleJSON(i))
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("create through replica 0: %v %s", err, r.body)
		}
		ids = append(ids, createdID(t, r))
	}
	// Rules go round-robin over the two groups: 3 and 2 creates, each
	// bumping its group's revision_number once.
	if after := revisions(); after[0] != before[0]+3 || after[1] != before[1]+2 {
		t.Errorf("group revisions %v after 3 and 2 creates, were %v", after, before)
	}
	for _, id := range ids {
		r, err := b.doAt(ctx, srvs[1].URL, http.MethodGet, path+"/"+id, b.member, nil)
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("read %s through replica 1: %v %d %s", id, err, r.status, r.body)
		}
	}
	var seen []string
	for last := start; len(seen) < len(ids); {
		if _, err := other.WaitRevision(ctx, last); err != nil {
			t.Fatalf("replica 1 waiting after revision %d (saw %v): %v", last, seen, err)
		}
		var cs []store.Change
		if err := other.Read(ctx, func(tx *store.Tx) (err error) { cs, err = tx.ChangesSince(ctx, last, 100); return err }); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Revision != last+1 {
				t.Fatalf("revision %d after %d", c.Revision, last)
			}
			last = c.Revision
			if c.Kind == store.KindSecurityGroupRule && c.Op == store.OpCreate {
				seen = append(seen, c.ObjectID)
			}
		}
	}
	if !slices.Equal(seen, ids) {
		t.Fatalf("replica 1's change log has rule creates %v, want %v", seen, ids)
	}
}

// TestReplicasKeepRuleChecks: rule creates run concurrently on PostgreSQL,
// across replicas; Neutron's checks still hold as if they ran one at a
// time: of 16 identical creates exactly one succeeds (409 for the others),
// and a project with room for 5 more rules gets exactly 5 of 20.
func TestReplicasKeepRuleChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, b := startReplicas(t)
	const path = "/v2.0/security-group-rules"
	burst := func(n int, body func(i int) []byte) map[int]int {
		var mu sync.Mutex
		statuses := map[int]int{}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Go(func() {
				<-start
				r, err := b.doAt(ctx, b.endpoint(i), http.MethodPost, path, b.member, body(i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return statuses
	}
	same := b.ruleJSON(0)
	if got := burst(16, func(int) []byte { return same }); got[http.StatusCreated] != 1 || got[http.StatusConflict] != 15 {
		t.Errorf("16 identical creates: statuses %v, want one 201 and fifteen 409", got)
	}

	r, err := b.do(ctx, http.MethodGet, path+"?project_id="+b.cfg.Project, b.admin, nil)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("list rules: %v %s", err, r.body)
	}
	var list struct {
		Rules []json.RawMessage `json:"security_group_rules"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	have := len(list.Rules)
	quota := []byte(fmt.Sprintf(`{"quota": {"security_group_rule": %d}}`, have+5))
	if r, err := b.do(ctx, http.MethodPut, "/v2.0/quotas/"+b.cfg.Project, b.admin, quota); err != nil || r.status != http.StatusOK {
		t.Fatalf("set quota: %v %s", err, r.body)
	}
	got := burst(20, func(i int) []byte { return b.ruleJSON(100 + i) })
	if got[http.StatusCreated] != 5 || got[http.StatusConflict] != 15 {
		t.Errorf("20 creates with room for 5: statuses %v, want five 201 and fifteen 409", got)
	}
}

// freeAddr is a loopback address nobody listens on (a moment ago).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServerProcessesOnOnePostgres: two `moat server --migrate always`
// processes started at once on one fresh PostgreSQL database both come up
// (the second waits on the migration lock) and serve the API; a rule
// created through one is read through the other, and both servers' stores
// follow one change log (read here through a third handle).
func TestServerProcessesOnOnePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := pgtest.Start(t).NewDatabase(t)
	bin := moatbin.Build(t)
	var urls []string
	for i := 0; i < 2; i++ {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "server", "--auth", "headers", "--listen", addr, "--db", db, "--migrate", "always", "--log-level", "warn")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			if t.Failed() {
				t.Logf("server %d log:\n%s", i, logs.String())
			}
		})
		urls = append(urls, "http://"+addr)
	}
	for _, u := range urls {
		for {
			r, err := http.Get(u + "/")
			if err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusOK {
					break
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("server %s never answered: %v", u, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	b, err := newBench(Config{URL: urls[0], Target: "processes", Groups: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if err := b.setup(ctx); err != nil {
		t.Fatal(err)
	}
	const path = "/v2.0/security-group-rules"
	r, err := b.doAt(ctx, urls[0], http.MethodPost, path, b.member, b.ruleJSON(0))
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("create through server 0: %v %s", err, r.body)
	}
	id := createdID(t, r)
	if r, err := b.doAt(ctx, urls[1], http.MethodGet, path+"/"+id, b.member, nil); err != nil || r.status != http.StatusOK {
		t.Fatalf("read through server 1: %v %d %s", err, r.status, r.body)
	}
	st, err := store.OpenMode(ctx, db, store.ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for {
		var cs []store.Change
		if err := st.Read(ctx, func(tx *store.Tx) (err error) { cs, err = tx.ChangesSince(ctx, 0, 1000); return err }); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(cs, func(c store.Change) bool { return c.ObjectID == id && c.Op == store.OpCreate }) {
			break
		}
		// The servers' sequencer numbers it within milliseconds.
		if _, err := st.WaitRevision(ctx, int64(len(cs))); err != nil {
			t.Fatalf("rule %s never reached the change log (%d changes): %v", id, len(cs), err)
		}
	}
}
