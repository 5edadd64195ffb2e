package wiring

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/moat-sg/moat/internal/hybrid"
)

// Fake is an in-memory Wirer for the agent's tests: it records plugged
// ports and taps, and simulates the hypervisor's taps (AddTap, RemoveTap).
// Err, when set, is returned by every call whose port id it maps (or by
// all calls, for key "*").
type Fake struct {
	mu    sync.Mutex
	kind  string
	ports map[string]*Plugged // by DevID
	taps  map[string]bool     // DevIDs whose tap exists
	Err   map[string]error
	Calls []string // "plug ID", "attach ID", "unplug ID", in order
}

// NewFake returns an empty Fake of the given kind (KindOVS if "").
func NewFake(kind string) *Fake {
	if kind == "" {
		kind = KindOVS
	}
	return &Fake{kind: kind, ports: map[string]*Plugged{}, taps: map[string]bool{}, Err: map[string]error{}}
}

// AddTap simulates the hypervisor creating a port's tap.
func (f *Fake) AddTap(portID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.taps[hybrid.DevID(portID)] = true
}

// RemoveTap simulates the hypervisor deleting a port's tap.
func (f *Fake) RemoveTap(portID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.taps, hybrid.DevID(portID))
	if p := f.ports[hybrid.DevID(portID)]; p != nil {
		p.TapAttached = false
	}
}

// Port returns what is plugged for a port.
func (f *Fake) Port(portID string) (Plugged, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[hybrid.DevID(portID)]
	if !ok {
		return Plugged{}, false
	}
	return *p, true
}

func (f *Fake) fail(op, id string) error {
	f.Calls = append(f.Calls, op+" "+id)
	if err := f.Err[id]; err != nil {
		return err
	}
	return f.Err["*"]
}

func (f *Fake) Kind() string { return f.kind }

func (f *Fake) Plug(_ context.Context, p Port) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("plug", p.ID); err != nil {
		return err
	}
	if err := hybrid.CheckDeviceID(p.ID); err != nil {
		return fmt.Errorf("plug: %w", err)
	}
	if _, err := net.ParseMAC(p.MAC); err != nil {
		return fmt.Errorf("plug port %s: MAC %q: %w", p.ID, p.MAC, err)
	}
	if f.kind == KindOVS && (p.Tag < MinVLAN || p.Tag > DeadVLAN) {
		return fmt.Errorf("plug port %s: local VLAN tag %d: want %d..%d", p.ID, p.Tag, MinVLAN, DeadVLAN)
	}
	tag := p.Tag
	if f.kind != KindOVS {
		tag = 0
	}
	old := f.ports[hybrid.DevID(p.ID)]
	f.ports[hybrid.DevID(p.ID)] = &Plugged{
		PortID: p.ID, DevID: hybrid.DevID(p.ID), NetworkID: p.NetworkID, MAC: p.MAC, Tag: tag, MTU: p.MTU,
		Bridge: true, Veth: true, InBrInt: true, TapAttached: old != nil && old.TapAttached,
	}
	return nil
}

func (f *Fake) AttachTap(_ context.Context, portID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("attach", portID); err != nil {
		return false, err
	}
	if !f.taps[hybrid.DevID(portID)] {
		return false, nil
	}
	p := f.ports[hybrid.DevID(portID)]
	if p == nil {
		return false, fmt.Errorf("attach %s: port %s is not plugged (%s missing)", hybrid.TapName(portID), portID, hybrid.BridgeName(portID))
	}
	p.TapAttached = true
	return true, nil
}

func (f *Fake) AdoptTap(_ context.Context, portID, dev string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("adopt", portID); err != nil {
		return err
	}
	f.taps[hybrid.DevID(portID)] = true
	return nil
}

func (f *Fake) Unplug(_ context.Context, portID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("unplug", portID); err != nil {
		return err
	}
	delete(f.ports, hybrid.DevID(portID))
	return nil
}

func (f *Fake) Plugged(context.Context) ([]Plugged, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Err["*"]; err != nil {
		return nil, err
	}
	out := make([]Plugged, 0, len(f.ports))
	for _, p := range f.ports {
		out = append(out, *p)
	}
	sortPlugged(out)
	return out, nil
}

func (f *Fake) Close() error { return nil }

var _ Wirer = (*Fake)(nil)
var _ Wirer = (*wirer)(nil)
