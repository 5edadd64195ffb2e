package wiring

import (
	"context"
	"errors"
	"testing"
)

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake(KindOVS)
	p := Port{ID: "c0a350e0-43b1-4a7e-9f57-6b1e2d3c4f5a", MAC: "fa:16:3e:c3:ea:d5", NetworkID: "n1", Tag: 1, MTU: 1450}
	if err := f.Plug(ctx, Port{ID: p.ID, MAC: p.MAC}); err == nil {
		t.Error("OVS fake accepted tag 0")
	}
	if err := f.Plug(ctx, p); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.AttachTap(ctx, p.ID); ok || err != nil {
		t.Fatalf("AttachTap without tap = %v, %v", ok, err)
	}
	f.AddTap(p.ID)
	if ok, err := f.AttachTap(ctx, p.ID); !ok || err != nil {
		t.Fatalf("AttachTap = %v, %v", ok, err)
	}
	if err := f.Plug(ctx, p); err != nil { // re-plug keeps the tap
		t.Fatal(err)
	}
	got, _ := f.Plugged(ctx)
	if len(got) != 1 || !got[0].TapAttached || got[0].Tag != 1 || !got[0].Complete() || got[0].PortID != p.ID {
		t.Fatalf("Plugged = %+v", got)
	}
	f.AddTap("other")
	if _, err := f.AttachTap(ctx, "other"); err == nil {
		t.Error("AttachTap of an unplugged port succeeded")
	}
	f.Err[p.ID] = errors.New("boom")
	if err := f.Unplug(ctx, p.ID); err == nil {
		t.Error("injected error not returned")
	}
	delete(f.Err, p.ID)
	if err := f.Unplug(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Plugged(ctx); len(got) != 0 {
		t.Fatalf("Plugged after Unplug = %+v", got)
	}
}
