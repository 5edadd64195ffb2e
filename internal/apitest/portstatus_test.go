package apitest

import (
	"context"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// TestPortStatusReason: when a host's agent reports a port ERROR, an
// admin sees why in moat:status_reason (shown and listed); the port's
// project sees the status only (the reason may name other projects'
// ports); the attribute is absent for any other status, so Neutron
// clients and the golden replays see Neutron's attributes exactly.
func TestPortStatusReason(t *testing.T) {
	e := newEnv(t, nil)
	n := newNetwork(t, e.a, "n")
	newSubnet(t, e.a, n.ID, "10.0.0.0/24")
	p := createPort(t, e.a, ports.CreateOpts{NetworkID: n.ID, Name: "p1"})
	const why = "its chains neutron-openvswi-iaaaa0000-0 would also be those of port aaaa0000-00ff, which keeps them"
	report := func(status, reason string) {
		t.Helper()
		err := e.srv.Store.Write(context.Background(), func(tx *store.Tx) error {
			got, err := tx.GetPort(context.Background(), p.ID)
			if err != nil {
				return err
			}
			return tx.ReportPortStatus(context.Background(), got, status, reason)
		})
		noErr(t, err, "report the port's status")
	}
	reason := func(obj map[string]any) (any, bool) {
		v, ok := obj["moat:status_reason"]
		return v, ok
	}
	report(neutron.PortStatusError, why)
	adminPort := rawGet(t, e.admin, "ports/"+p.ID)["port"].(map[string]any)
	if v, ok := reason(adminPort); !ok || v != why || adminPort["status"] != "ERROR" {
		t.Errorf("admin sees status %v, moat:status_reason %v (%v)", adminPort["status"], v, ok)
	}
	list := rawGet(t, e.admin, "ports?id="+p.ID)["ports"].([]any)
	if v, _ := reason(list[0].(map[string]any)); v != why {
		t.Errorf("admin's list shows moat:status_reason %v", v)
	}
	only := rawGet(t, e.admin, "ports/"+p.ID+"?fields=moat:status_reason")["port"].(map[string]any)
	if len(only) != 1 || only["moat:status_reason"] != why {
		t.Errorf("fields=moat:status_reason gives %v", only)
	}
	if got := rawKeys(t, e.a, "ports/"+p.ID, "port"); !slices.Equal(got, memberPortKeys) {
		t.Errorf("member GET keys of an ERROR port\n got %q\nwant %q", got, memberPortKeys)
	}
	if got := getPort(t, e.a, p.ID); got.Status != "ERROR" {
		t.Errorf("member sees status %s", got.Status)
	}
	// Fixed: ACTIVE, and the attribute is gone for the admin too.
	report(neutron.PortStatusActive, "")
	adminPort = rawGet(t, e.admin, "ports/"+p.ID)["port"].(map[string]any)
	if v, ok := reason(adminPort); ok || adminPort["status"] != "ACTIVE" {
		t.Errorf("after recovery admin sees status %v, moat:status_reason %v", adminPort["status"], v)
	}
}
