package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store/pgtest"
)

// ruleCreateFixture is a store with two projects' groups.
type ruleCreateFixture struct {
	s      *Store
	ga, gb *neutron.SecurityGroup // of pa, of pb
}

func newRuleCreateFixture(t *testing.T, s *Store) *ruleCreateFixture {
	t.Helper()
	ctx := context.Background()
	f := &ruleCreateFixture{s: s,
		ga: &neutron.SecurityGroup{ProjectID: "pa", Name: "a", Stateful: true},
		gb: &neutron.SecurityGroup{ProjectID: "pb", Name: "b", Stateful: true}}
	err := s.Write(ctx, func(tx *Tx) error {
		if err := tx.CreateSecurityGroup(ctx, f.ga, nil, false); err != nil {
			return err
		}
		return tx.CreateSecurityGroup(ctx, f.gb, nil, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tcpRule(project, group string, port int) *neutron.SecurityGroupRule {
	proto := "tcp"
	return &neutron.SecurityGroupRule{ProjectID: project, SecurityGroupID: group, Direction: "ingress", Ethertype: "IPv4",
		Protocol: &proto, PortRangeMin: &port, PortRangeMax: &port}
}

// counts are the rows a create writes.
func (f *ruleCreateFixture) counts(t *testing.T) [3]int {
	t.Helper()
	ctx := context.Background()
	var out [3]int
	err := f.s.Read(ctx, func(tx *Tx) error {
		for i, q := range []string{`SELECT COUNT(*) FROM security_group_rules`, `SELECT COUNT(*) FROM standard_attrs`,
			`SELECT (SELECT COUNT(*) FROM pending_changes) + (SELECT COUNT(*) FROM changes)`} {
			n, err := tx.count(ctx, q)
			if err != nil {
				return err
			}
			out[i] = n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *ruleCreateFixture) revision(t *testing.T, g *neutron.SecurityGroup) int64 {
	t.Helper()
	var got *neutron.SecurityGroup
	err := f.s.Read(context.Background(), func(tx *Tx) error {
		var err error
		got, err = tx.GetSecurityGroup(context.Background(), g.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got.RevisionNumber
}

// TestCreateRuleAtOnce: the one-statement create makes the rule, its
// standard attributes, its change and the group's revision bump, as the
// general path does; everything it does not decide it leaves, writing
// nothing. On SQLite it never creates.
func TestCreateRuleAtOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		f := newRuleCreateFixture(t, openTest(t))
		before := f.counts(t)
		ok, err := f.s.CreateRuleAtOnce(ctx, tcpRule("pa", f.ga.ID, 22), RuleCreate{Quota: "security_group_rule", DefaultLimit: -1})
		if ok || err != nil {
			t.Fatalf("on SQLite: %v, %v, want false, nil", ok, err)
		}
		if after := f.counts(t); after != before {
			t.Errorf("rows %v, then %v", before, after)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		f := newRuleCreateFixture(t, openURL(t, pgtest.Start(t).NewDatabase(t)))
		member := RuleCreate{Quota: "security_group_rule", DefaultLimit: -1}
		rev := f.revision(t, f.ga)
		r := tcpRule("pa", f.ga.ID, 22)
		desc := "ssh"
		r.Description = &desc
		before := f.counts(t)
		ok, err := f.s.CreateRuleAtOnce(ctx, r, member)
		if !ok || err != nil {
			t.Fatalf("create: %v, %v", ok, err)
		}
		if after := f.counts(t); after != [3]int{before[0] + 1, before[1] + 1, before[2] + 1} {
			t.Errorf("rows %v, then %v: want one more rule, standard attributes and change", before, after)
		}
		if got := f.revision(t, f.ga); got != rev+1 {
			t.Errorf("group revision %d, then %d", rev, got)
		}
		var stored *neutron.SecurityGroupRule
		if err := f.s.Read(ctx, func(tx *Tx) error {
			var err error
			stored, err = tx.GetRule(ctx, r.ID)
			return err
		}); err != nil || stored == nil {
			t.Fatalf("read the rule back: %v, %v", stored, err)
		}
		if stored.StandardAttrID != r.StandardAttrID || !stored.CreatedAt.Equal(r.CreatedAt) || stored.RevisionNumber != 0 ||
			*stored.Description != "ssh" || neutron.RuleKey(stored) != neutron.RuleKey(r) || stored.ProjectID != "pa" {
			t.Errorf("stored %+v, created %+v", stored, r)
		}
		var ch []Change
		waitFor(t, "the create's change", func() bool {
			ch = changesSince(t, f.s, 0)
			return len(ch) > 0 && ch[len(ch)-1].ObjectID == r.ID
		})
		if c := ch[len(ch)-1]; c.Kind != KindSecurityGroupRule || c.Op != OpCreate || c.ProjectID != "pa" {
			t.Errorf("change %+v", c)
		}

		otherGroup := "00000000-0000-0000-0000-000000000000"
		withRemote := func(r *neutron.SecurityGroupRule, remote string) *neutron.SecurityGroupRule {
			r.RemoteGroupID = &remote
			return r
		}
		ag := "00000000-0000-0000-0000-0000000000aa"
		withAG := tcpRule("pa", f.ga.ID, 23)
		withAG.RemoteAddressGroupID = &ag
		if err := f.s.Write(ctx, func(tx *Tx) error { return tx.SetQuota(ctx, "pq", "security_group_rule", 0) }); err != nil {
			t.Fatal(err)
		}
		left := []struct {
			name string
			rule *neutron.SecurityGroupRule
			c    RuleCreate
		}{
			{"a duplicate", tcpRule("pa", f.ga.ID, 22), member},
			{"no such group", tcpRule("pa", otherGroup, 22), member},
			{"another project's group", tcpRule("pa", f.gb.ID, 22), member},
			{"no such remote group", withRemote(tcpRule("pa", f.ga.ID, 24), otherGroup), member},
			{"another project's remote group", withRemote(tcpRule("pa", f.ga.ID, 24), f.gb.ID), member},
			{"a remote address group", withAG, member},
			{"over the default quota", tcpRule("pa", f.ga.ID, 25), RuleCreate{Quota: "security_group_rule", DefaultLimit: 1}},
			{"over the project's own quota", tcpRule("pq", f.ga.ID, 25), RuleCreate{Quota: "security_group_rule", DefaultLimit: 100, Admin: true}},
			{"an admin's duplicate", tcpRule("pb", f.ga.ID, 22), RuleCreate{Quota: "security_group_rule", DefaultLimit: -1, Admin: true}},
		}
		for _, l := range left {
			before := f.counts(t)
			rev := f.revision(t, f.ga)
			ok, err := f.s.CreateRuleAtOnce(ctx, l.rule, l.c)
			if ok || err != nil {
				t.Errorf("%s: %v, %v, want false, nil", l.name, ok, err)
			}
			if after := f.counts(t); after != before {
				t.Errorf("%s: rows %v, then %v", l.name, before, after)
			}
			if got := f.revision(t, f.ga); got != rev {
				t.Errorf("%s: group revision %d, then %d", l.name, rev, got)
			}
		}

		made := []struct {
			name string
			rule *neutron.SecurityGroupRule
			c    RuleCreate
		}{
			{"its own group as remote", withRemote(tcpRule("pa", f.ga.ID, 24), f.ga.ID), member},
			{"under the default quota", tcpRule("pa", f.ga.ID, 26), RuleCreate{Quota: "security_group_rule", DefaultLimit: 3}},
			{"an admin's, into another project's group", withRemote(tcpRule("pa", f.gb.ID, 22), f.ga.ID), RuleCreate{Quota: "security_group_rule", DefaultLimit: -1, Admin: true}},
		}
		for _, m := range made {
			if ok, err := f.s.CreateRuleAtOnce(ctx, m.rule, m.c); !ok || err != nil {
				t.Errorf("%s: %v, %v, want true", m.name, ok, err)
			}
		}
	})
}

// TestCreateRuleAtOnceConcurrent: one-statement creates on two replicas,
// beside general-path creates and quota counts, keep the quota and the
// duplicate check exact and every change numbered once, in order.
func TestCreateRuleAtOnceConcurrent(t *testing.T) {
	shortIntervals(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := pgtest.Start(t).NewDatabase(t)
	replicas := []*Store{openURL(t, url), openURL(t, url)}
	f := newRuleCreateFixture(t, replicas[0])
	const limit, writers, tries = 60, 8, 20
	if err := f.s.Write(ctx, func(tx *Tx) error { return tx.SetQuota(ctx, "pa", "security_group_rule", limit) }); err != nil {
		t.Fatal(err)
	}
	rev := f.revision(t, f.ga)
	var made atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := replicas[w%2]
			for i := 0; i < tries; i++ {
				// Ports repeat across writers: each rule is tried by two.
				r := tcpRule("pa", f.ga.ID, 1000+(w/2)*tries+i)
				ok, err := s.CreateRuleAtOnce(ctx, r, RuleCreate{Quota: "security_group_rule", DefaultLimit: -1})
				if err == nil && !ok && i%2 == 0 {
					// The general path decides what the statement left,
					// as the API does.
					r.ID = ""
					err = s.WriteConcurrent(ctx, func(tx *Tx) error {
						n, err := tx.CountRules(ctx, "pa")
						if err != nil || n+1 > limit {
							return err
						}
						if id, err := tx.RuleWithKey(ctx, f.ga.ID, []string{neutron.RuleKey(r)}); err != nil || id != "" {
							return err
						}
						if err := tx.CreateRules(ctx, []*neutron.SecurityGroupRule{r}); err != nil {
							return err
						}
						ok = true
						return nil
					})
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				if ok {
					made.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if made.Load() != limit {
		t.Errorf("%d rules made, want the quota's %d (%d distinct tried)", made.Load(), limit, writers/2*tries)
	}
	var rules []neutron.SecurityGroupRule
	if err := f.s.Read(ctx, func(tx *Tx) error {
		var err error
		rules, err = tx.RulesOfGroup(ctx, f.ga.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, r := range rules {
		if keys[neutron.RuleKey(&r)] {
			t.Errorf("two rules %s", neutron.RuleKey(&r))
		}
		keys[neutron.RuleKey(&r)] = true
	}
	if len(rules) != limit {
		t.Errorf("%d rules in the group, want %d", len(rules), limit)
	}
	if got := f.revision(t, f.ga); got != rev+limit {
		t.Errorf("group revision %d, then %d: want one bump per rule", rev, got)
	}
	// Every create's change, numbered once each, gapless.
	var ch []Change
	waitFor(t, "every change numbered", func() bool {
		ch = changesSince(t, f.s, 0)
		n := 0
		for _, c := range ch {
			if c.Kind == KindSecurityGroupRule {
				n++
			}
		}
		return n == limit
	})
	for i, c := range ch {
		if c.Revision != int64(i+1) {
			t.Fatalf("change %d has revision %d", i, c.Revision)
		}
	}
}
