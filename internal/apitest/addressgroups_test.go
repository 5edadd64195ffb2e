package apitest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/addressgroups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
)

// TestGophercloudAddressGroups: gophercloud's addressgroups package
// against moat: the lifecycle, add and remove, a rule naming the group,
// and another project that cannot see it.
func TestGophercloudAddressGroups(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ag, err := addressgroups.Create(ctx, e.a, addressgroups.CreateOpts{Name: "office", Description: "d",
		Addresses: []string{"192.0.2.1/24", "2001:db8::/64"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if ag.Name != "office" || ag.ProjectID != projectA.project || !slices.Equal(ag.Addresses, []string{"192.0.2.0/24", "2001:db8::/64"}) {
		t.Errorf("created %+v", ag)
	}
	got, err := addressgroups.AddAddresses(ctx, e.a, ag.ID, addressgroups.UpdateAddressesOpts{Addresses: []string{"198.51.100.7/32"}}).Extract()
	if err != nil || !slices.Equal(got.Addresses, []string{"192.0.2.0/24", "198.51.100.7/32", "2001:db8::/64"}) {
		t.Errorf("add: %+v, %v", got, err)
	}
	got, err = addressgroups.RemoveAddresses(ctx, e.a, ag.ID, addressgroups.UpdateAddressesOpts{Addresses: []string{"2001:db8::/64"}}).Extract()
	if err != nil || !slices.Equal(got.Addresses, []string{"192.0.2.0/24", "198.51.100.7/32"}) {
		t.Errorf("remove: %+v, %v", got, err)
	}
	name := "office2"
	if got, err = addressgroups.Update(ctx, e.a, ag.ID, addressgroups.UpdateOpts{Name: &name}).Extract(); err != nil || got.Name != name {
		t.Errorf("update: %+v, %v", got, err)
	}
	page, err := addressgroups.List(e.a, addressgroups.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := addressgroups.ExtractGroups(page); len(all) != 1 || all[0].ID != ag.ID {
		t.Errorf("list: %+v", all)
	}
	if _, err := addressgroups.Get(ctx, e.b, ag.ID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("another project's get: %v, want 404", err)
	}
	sg, err := groups.Create(ctx, e.a, groups.CreateOpts{Name: "web"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	r, err := rules.Create(ctx, e.a, rules.CreateOpts{SecGroupID: sg.ID, Direction: rules.DirIngress, EtherType: rules.EtherType4,
		Protocol: rules.ProtocolTCP, RemoteAddressGroupID: ag.ID}).Extract()
	if err != nil || r.RemoteAddressGroupID != ag.ID {
		t.Fatalf("rule naming the address group: %+v, %v", r, err)
	}
	err = addressgroups.Delete(ctx, e.a, ag.ID).ExtractErr()
	var conflict gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &conflict) || conflict.Actual != http.StatusConflict {
		t.Errorf("delete in use: %v, want 409", err)
	}
	if err := rules.Delete(ctx, e.a, r.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := addressgroups.Delete(ctx, e.a, ag.ID).ExtractErr(); err != nil {
		t.Errorf("delete: %v", err)
	}
}
