package api

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// TestRuleLookupAnswersOncePerGroupAndProject checks ruleLookup's answers
// (own group, shared group, foreign group, missing group, admin) and that
// it reads a group and its sharing once per request.
func TestRuleLookupAnswersOncePerGroupAndProject(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	own := &neutron.SecurityGroup{ProjectID: "p1", Name: "own", Stateful: true}
	shared := &neutron.SecurityGroup{ProjectID: "p1", Name: "shared", Stateful: true}
	policy := &neutron.RBACPolicy{ProjectID: "p1", ObjectType: "security_group", Action: "access_as_shared", TargetTenant: "p2"}
	err = st.Write(ctx, func(tx *store.Tx) error {
		for _, g := range []*neutron.SecurityGroup{own, shared} {
			if err := tx.CreateSecurityGroup(ctx, g, nil, false); err != nil {
				return err
			}
		}
		policy.ObjectID = shared.ID
		return tx.CreateRBACPolicy(ctx, policy)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Write(ctx, func(tx *store.Tx) error {
		member := newRuleLookup(ctx, tx, &neutron.Context{ProjectID: "p2"})
		admin := newRuleLookup(ctx, tx, &neutron.Context{ProjectID: "admin", IsAdmin: true})
		cases := []struct {
			l           *ruleLookup
			id, project string
			want        bool
		}{
			{member, own.ID, "p1", true},
			{member, own.ID, "p2", false},
			{member, shared.ID, "p2", true},
			{member, "missing", "p2", false},
			{admin, own.ID, "p2", true},
			{admin, "missing", "p2", false},
		}
		check := func(when string) {
			for _, c := range cases {
				got, err := c.l.SecurityGroupVisible(c.id, c.project)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("%s: SecurityGroupVisible(%s, %s) = %v, want %v", when, c.id, c.project, got, c.want)
				}
			}
		}
		check("first")
		// The lookup answers from what it read: changes made after the
		// checks of a request are not seen by them.
		if err := tx.DeleteRBACPolicy(ctx, policy); err != nil {
			return err
		}
		g, err := member.group(own.ID)
		if err != nil {
			return err
		}
		if err := tx.DeleteSecurityGroup(ctx, g); err != nil {
			return err
		}
		check("again")
		if again, _ := member.group(own.ID); again != g {
			t.Errorf("group %s was read twice", own.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
