package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store/pgtest"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	return openURL(t, "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
}

func openURL(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// onBoth runs a test on SQLite and on PostgreSQL: the store is one code
// for both drivers.
func onBoth(t *testing.T, test func(*testing.T, *Store)) {
	t.Run("sqlite", func(t *testing.T) { test(t, openTest(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, openURL(t, pgtest.Start(t).NewDatabase(t))) })
}

func TestMain(m *testing.M) {
	if url := os.Getenv(helperURLEnv); url != "" {
		os.Exit(runMigrateHelper(url, os.Getenv(helperGoEnv)))
	}
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

func TestOpenMigratesOnceAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "moat.db")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		s, err := Open(ctx, "sqlite://"+path)
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		var n int
		if err := s.reader.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations) {
			t.Fatalf("open #%d: %d migrations recorded, want %d", i, n, len(migrations))
		}
		s.Close()
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"mysql://x", "sqlite://", "::bad"} {
		if _, err := Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded, want error", u)
		}
	}
}

func TestSecurityGroupLifecycleRevisionsAndChangeLog(t *testing.T) {
	onBoth(t, testSecurityGroupLifecycleRevisionsAndChangeLog)
}

func testSecurityGroupLifecycleRevisionsAndChangeLog(t *testing.T, s *Store) {
	ctx := context.Background()
	g := &neutron.SecurityGroup{ProjectID: "p1", Name: "web", Stateful: true}
	err := s.Write(ctx, func(tx *Tx) error {
		return tx.CreateSecurityGroup(ctx, g, neutron.DefaultRules("", "p1", false), false)
	})
	if err != nil {
		t.Fatal(err)
	}
	if g.RevisionNumber != 1 || len(g.Rules) != 2 {
		t.Fatalf("new group: revision %d with %d rules, want 1 and 2", g.RevisionNumber, len(g.Rules))
	}
	// Two rules in one transaction bump the group once.
	port := 22
	proto := "tcp"
	err = s.Write(ctx, func(tx *Tx) error {
		return tx.CreateRules(ctx, []*neutron.SecurityGroupRule{
			{ProjectID: "p1", SecurityGroupID: g.ID, Direction: "ingress", Ethertype: "IPv4", Protocol: &proto, PortRangeMin: &port, PortRangeMax: &port},
			{ProjectID: "p1", SecurityGroupID: g.ID, Direction: "ingress", Ethertype: "IPv6", Protocol: &proto},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *neutron.SecurityGroup
	s.Read(ctx, func(tx *Tx) error {
		got, err = tx.GetSecurityGroup(ctx, g.ID)
		return err
	})
	if got.RevisionNumber != 2 {
		t.Fatalf("after adding two rules in one transaction: revision %d, want 2", got.RevisionNumber)
	}
	// A failing transaction leaves nothing behind.
	boom := errors.New("boom")
	err = s.Write(ctx, func(tx *Tx) error {
		if err := tx.DeleteSecurityGroup(ctx, got); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	var rules []neutron.SecurityGroupRule
	s.Read(ctx, func(tx *Tx) error {
		rules, err = tx.RulesOfGroup(ctx, g.ID)
		return err
	})
	if len(rules) != 4 {
		t.Fatalf("rolled-back delete lost rules: %d left, want 4", len(rules))
	}
	if err := s.Write(ctx, func(tx *Tx) error { return tx.DeleteSecurityGroup(ctx, got) }); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	var changes []Change
	s.Read(ctx, func(tx *Tx) error {
		changes, err = tx.ChangesSince(ctx, 0, 100)
		return err
	})
	var ops []string
	for i, c := range changes {
		if i > 0 && c.Revision <= changes[i-1].Revision {
			t.Fatalf("change log not monotonic: %d after %d", c.Revision, changes[i-1].Revision)
		}
		ops = append(ops, c.Kind+" "+c.Op)
	}
	want := []string{
		"security_group create", "security_group_rule create", "security_group_rule create",
		"security_group_rule create", "security_group_rule create",
		"security_group_rule delete", "security_group_rule delete", "security_group_rule delete", "security_group_rule delete",
		"security_group delete",
	}
	if len(ops) != len(want) {
		t.Fatalf("change log:\n%v\nwant\n%v", ops, want)
	}
	for i := range want {
		if ops[i] != want[i] {
			t.Fatalf("change log:\n%v\nwant\n%v", ops, want)
		}
	}
}

func TestDeletingGroupCascadesToRulesThatReferenceIt(t *testing.T) {
	onBoth(t, testDeletingGroupCascadesToRulesThatReferenceIt)
}

func testDeletingGroupCascadesToRulesThatReferenceIt(t *testing.T, s *Store) {
	ctx := context.Background()
	a := &neutron.SecurityGroup{ProjectID: "p1", Name: "a", Stateful: true}
	b := &neutron.SecurityGroup{ProjectID: "p1", Name: "b", Stateful: true}
	err := s.Write(ctx, func(tx *Tx) error {
		if err := tx.CreateSecurityGroup(ctx, a, nil, false); err != nil {
			return err
		}
		if err := tx.CreateSecurityGroup(ctx, b, nil, false); err != nil {
			return err
		}
		return tx.CreateRules(ctx, []*neutron.SecurityGroupRule{
			{ProjectID: "p1", SecurityGroupID: b.ID, Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: &a.ID},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, func(tx *Tx) error { return tx.DeleteSecurityGroup(ctx, a) }); err != nil {
		t.Fatal(err)
	}
	s.Read(ctx, func(tx *Tx) error {
		rules, err := tx.RulesOfGroup(ctx, b.ID)
		if err != nil || len(rules) != 0 {
			t.Fatalf("rules of b referencing deleted a: %v %v", rules, err)
		}
		gb, _ := tx.GetSecurityGroup(ctx, b.ID)
		if gb.RevisionNumber != 2 {
			t.Fatalf("b's revision after losing a rule: %d, want 2", gb.RevisionNumber)
		}
		return nil
	})
}

func TestListFiltersSortsTagsAndPages(t *testing.T) { onBoth(t, testListFiltersSortsTagsAndPages) }

func testListFiltersSortsTagsAndPages(t *testing.T, s *Store) {
	ctx := context.Background()
	names := []string{"c", "a", "b", "a"}
	var groups []*neutron.SecurityGroup
	err := s.Write(ctx, func(tx *Tx) error {
		for _, n := range names {
			g := &neutron.SecurityGroup{ProjectID: "p1", Name: n, Stateful: true}
			if err := tx.CreateSecurityGroup(ctx, g, nil, false); err != nil {
				return err
			}
			groups = append(groups, g)
		}
		other := &neutron.SecurityGroup{ProjectID: "p2", Name: "a", Stateful: true}
		if err := tx.CreateSecurityGroup(ctx, other, nil, false); err != nil {
			return err
		}
		if err := tx.SetTags(ctx, TagTarget{Kind: KindSecurityGroup, ID: groups[0].ID, ProjectID: "p1", StandardAttrID: groups[0].StandardAttrID}, []string{"x", "y"}); err != nil {
			return err
		}
		return tx.SetTags(ctx, TagTarget{Kind: KindSecurityGroup, ID: groups[1].ID, ProjectID: "p1", StandardAttrID: groups[1].StandardAttrID}, []string{"x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	list := func(q ListQuery) []string {
		var out []string
		s.Read(ctx, func(tx *Tx) error {
			gs, err := tx.ListSecurityGroups(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range gs {
				out = append(out, g.Name)
			}
			return nil
		})
		return out
	}
	scope := &Scope{ProjectID: "p1"}
	byName := []neutron.Sort{{Key: "name", Asc: true}}
	cases := []struct {
		name string
		q    ListQuery
		want string
	}{
		{"scope", ListQuery{Scope: scope, Sorts: byName}, "[a a b c]"},
		{"admin sees all", ListQuery{Sorts: byName}, "[a a a b c]"},
		{"filter", ListQuery{Scope: scope, Filters: neutron.Filters{"name": {"a", "c"}}, Sorts: byName}, "[a a c]"},
		{"desc", ListQuery{Scope: scope, Sorts: []neutron.Sort{{Key: "name", Asc: false}}}, "[c b a a]"},
		{"limit", ListQuery{Scope: scope, Sorts: byName, Limit: 3}, "[a a b]"},
		{"tags all", ListQuery{Scope: scope, Filters: neutron.Filters{"tags": {"x,y"}}}, "[c]"},
		{"tags any", ListQuery{Scope: scope, Filters: neutron.Filters{"tags-any": {"x,y"}}, Sorts: byName}, "[a c]"},
		{"not tags", ListQuery{Scope: scope, Filters: neutron.Filters{"not-tags": {"x,y"}}, Sorts: byName}, "[a a b]"},
		{"not tags any", ListQuery{Scope: scope, Filters: neutron.Filters{"not-tags-any": {"x"}}, Sorts: byName}, "[a b]"},
		{"shared", ListQuery{Scope: scope, Filters: neutron.Filters{"shared": {true}}}, "[]"},
	}
	for _, c := range cases {
		if got := fmtList(list(c.q)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

func TestPage(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	cases := []struct {
		q    ListQuery
		want string
	}{
		{ListQuery{}, "[a b c d e]"},
		{ListQuery{Limit: 2}, "[a b]"},
		{ListQuery{Limit: 2, Marker: "b"}, "[c d]"},
		{ListQuery{Limit: 2, Marker: "d", PageReverse: true}, "[b c]"},
		{ListQuery{Limit: 2, PageReverse: true}, "[d e]"},
		{ListQuery{Limit: 2, Marker: "zz"}, "[a b]"},
		{ListQuery{Marker: "e"}, "[]"},
	}
	for _, c := range cases {
		var got []string
		for _, i := range Page(ids, c.q) {
			got = append(got, ids[i])
		}
		if fmtList(got) != c.want {
			t.Errorf("Page(%+v) = %v, want %s", c.q, got, c.want)
		}
	}
}

func TestRebindDollar(t *testing.T) {
	got := rebindDollar(`SELECT a FROM t WHERE b = ? AND c = '?' AND d IN (?, ?)`)
	want := `SELECT a FROM t WHERE b = $1 AND c = '?' AND d IN ($2, $3)`
	if got != want {
		t.Fatalf("got %s", got)
	}
}

// TestConcurrentReadsDoNotDeadlockOnPrepare runs more concurrent read
// transactions than the pool has connections, each preparing new
// statements while holding its connection.
func TestConcurrentReadsDoNotDeadlockOnPrepare(t *testing.T) {
	onBoth(t, testConcurrentReadsDoNotDeadlockOnPrepare)
}

func testConcurrentReadsDoNotDeadlockOnPrepare(t *testing.T, s *Store) {
	ctx := context.Background()
	const n = 32
	errc := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		go func(i int) {
			<-start
			errc <- s.Read(ctx, func(tx *Tx) error {
				// A distinct query text per goroutine: each needs a prepare.
				_, err := tx.stringColumn(ctx, fmt.Sprintf(`SELECT id FROM security_groups WHERE name = ? AND %d = %d`, i, i), "x")
				if err != nil {
					return err
				}
				_, err = tx.LatestRevision(ctx)
				return err
			})
		}(i)
	}
	close(start)
	timeout := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("reads deadlocked")
		}
	}
}

// TestPrepareOffTheRequestPath holds every connection of the reader pool
// in transactions and asks for a statement of a new text: it is not
// prepared on the caller's path (no connection is free), but in the
// background once one is, with no further use of the query.
func TestPrepareOffTheRequestPath(t *testing.T) {
	onBoth(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		n := s.reader.Stats().MaxOpenConnections
		if n <= 0 {
			t.Fatalf("reader pool has no connection limit")
		}
		q := `SELECT id FROM security_groups WHERE name = ? AND 7 = 7`
		var wg sync.WaitGroup
		inside := make(chan struct{}, n)
		release := make(chan struct{})
		errc := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errc <- s.Read(ctx, func(tx *Tx) error {
					if _, err := tx.LatestRevision(ctx); err != nil { // holds the connection
						return err
					}
					inside <- struct{}{}
					<-release
					return nil
				})
			}()
		}
		for i := 0; i < n; i++ {
			<-inside
		}
		// Every connection is held: a prepare could not get one.
		if st := s.readerStmts.get(s.reader, s.d.rebind(q)); st != nil {
			t.Fatalf("a statement was prepared while the pool had no free connection")
		}
		close(release)
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
		// Now a connection is free: the prepare started while none was
		// completes by itself, with no further use of the query.
		cached := func() bool {
			s.readerStmts.mu.Lock()
			defer s.readerStmts.mu.Unlock()
			return s.readerStmts.m[s.d.rebind(q)] != nil
		}
		deadline := time.Now().Add(20 * time.Second)
		for !cached() {
			if time.Now().After(deadline) {
				t.Fatal("the statement was never prepared")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestPageOf(t *testing.T) {
	type item struct{ id string }
	all := []item{{"a"}, {"b"}, {"c"}, {"d"}}
	got := pageOf(all, func(x *item) string { return x.id }, ListQuery{Limit: 2, Marker: "a"})
	if len(got) != 2 || got[0].id != "b" || got[1].id != "c" {
		t.Fatalf("pageOf = %v, want [{b} {c}]", got)
	}
	if got := pageOf(all, func(x *item) string { return x.id }, ListQuery{Marker: "d"}); len(got) != 0 {
		t.Fatalf("pageOf past the end = %v, want none", got)
	}
}

// TestSQLiteSynchronous checks the durability pragma on every connection
// of both pools, held at once so that each is a distinct connection: FULL
// unless the URL opts into NORMAL (power loss may then undo the last
// acknowledged commits, a deleted rule coming back).
func TestSQLiteSynchronous(t *testing.T) {
	const full, normal = 2, 1 // PRAGMA synchronous values
	for _, c := range []struct {
		query string
		want  int
	}{
		{"", full},
		{"?synchronous=full", full},
		{"?synchronous=FULL", full},
		{"?synchronous=normal", normal},
	} {
		t.Run(c.query, func(t *testing.T) {
			// The subtest's directory has a '#' in its name ("#00"),
			// which a URL must escape.
			u := (&url.URL{Scheme: "sqlite", Path: filepath.Join(t.TempDir(), "moat.db")}).String()
			s := openURL(t, u+c.query)
			// A write and a read through the store first, so that the
			// pools' connections have done real work.
			if err := s.Write(context.Background(), func(*Tx) error { return nil }); err != nil {
				t.Fatal(err)
			}
			for _, p := range []struct {
				name string
				db   *sql.DB
				n    int
			}{{"writer", s.writer, maxSQLiteWriters}, {"reader", s.reader, maxSQLiteReaders}} {
				var conns []*sql.Conn
				for i := 0; i < p.n; i++ {
					conn, err := p.db.Conn(context.Background())
					if err != nil {
						t.Fatalf("%s connection %d: %v", p.name, i, err)
					}
					defer conn.Close()
					conns = append(conns, conn)
				}
				for i, conn := range conns {
					var got int
					if err := conn.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&got); err != nil {
						t.Fatalf("%s connection %d: %v", p.name, i, err)
					}
					if got != c.want {
						t.Errorf("%s connection %d: synchronous = %d, want %d", p.name, i, got, c.want)
					}
					var mode string
					if err := conn.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
						t.Errorf("%s connection %d: journal_mode %q %v, want wal", p.name, i, mode, err)
					}
				}
			}
		})
	}
}

func TestSQLiteURLParameters(t *testing.T) {
	dir := t.TempDir()
	for _, q := range []string{"?synchronous=off", "?synchronous=extra", "?synchronous=", "?synchronous=full&synchronous=normal", "?cache=shared", "?mode=ro&synchronous=full"} {
		if s, err := Open(context.Background(), "sqlite://"+filepath.Join(dir, "moat.db")+q); err == nil {
			s.Close()
			t.Errorf("Open(...%s) succeeded, want error", q)
		}
	}
}

// TestSQLiteURLFragment: an unescaped '#' would cut the path short and open
// another file; it is refused.
func TestSQLiteURLFragment(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(context.Background(), "sqlite://"+dir+"/a#b.db")
	if err == nil || !strings.Contains(err.Error(), "%23") {
		t.Fatalf("Open with '#' in the path: %v, want an error saying to write %%23", err)
	}
	if _, err := os.Stat(dir + "/a"); !os.IsNotExist(err) {
		t.Fatalf("a file %s/a was created: %v", dir, err)
	}
}

// TestSQLitePathSpecialCharacters: a file name with '?', '#' or '%'
// (escaped in moat's URL) is opened as exactly that file.
func TestSQLitePathSpecialCharacters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a?b#c%d.db")
	s := openURL(t, (&url.URL{Scheme: "sqlite", Path: path}).String())
	s.Close()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "a?b#c%d.db") {
		t.Fatalf("files in %s: %v, want a?b#c%%d.db", dir, names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "a?b#c%d.db") {
			t.Errorf("unexpected file %q next to the database", n)
		}
	}
}
