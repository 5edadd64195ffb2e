package nftables

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/testenv"
	"sigs.k8s.io/knftables"
)

func sh(t *testing.T, ns dataplane.Netns, args ...string) {
	t.Helper()
	if _, err := ns.Run(context.Background(), nil, args[0], args[1:]...); err != nil {
		t.Fatal(err)
	}
}

func pings(ns dataplane.Netns, ip string) bool {
	_, err := ns.Run(context.Background(), nil, "ping", "-n", "-q", "-c", "1", "-W", "1", ip)
	return err == nil
}

// TestKernelPacket sends real packets through a tiny version of moat's
// layout, to show that what the model renders is what the kernel
// enforces: a VM namespace and a "network" namespace joined by one port's
// bridge (tap and qvb on qbr) in a host namespace with br_netfilter. The
// bridge table marks frames from the tap; the ip table sets the port's
// zone and dispatches on qbr . mark to the port's two chains. Each step is
// one Apply: a set element lets the network in, a verdict element change
// cuts the VM's egress, and undoing both restores the first state.
func TestKernelPacket(t *testing.T) {
	needKernel(t)
	testenv.RequireTools(t, "ping")
	testenv.RequireBrNetfilter(t)
	host, vm, net := newNetns(t), newNetns(t), newNetns(t)
	tap, qvb, qbr := "tap"+portA[:11], "qvb"+portA[:11], "qbr"+portA[:11]
	sh(t, host, "ip", "link", "set", "lo", "up")
	sh(t, host, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	sh(t, host, "ip", "link", "add", qbr, "type", "bridge")
	for _, l := range []struct {
		dev  string
		peer dataplane.Netns
		ip   string
	}{{tap, vm, "10.9.0.1/24"}, {qvb, net, "10.9.0.2/24"}} {
		sh(t, host, "ip", "link", "add", l.dev, "type", "veth", "peer", "name", "eth0", "netns", l.peer.Name)
		sh(t, host, "ip", "link", "set", l.dev, "master", qbr, "up")
		sh(t, l.peer, "ip", "addr", "add", l.ip, "dev", "eth0")
		sh(t, l.peer, "ip", "link", "set", "eth0", "up")
		sh(t, l.peer, "ip", "link", "set", "lo", "up")
	}
	sh(t, host, "ip", "link", "set", qbr, "up")

	layout := func(allowNet, egressOpen bool) *Ruleset {
		l := tLayout{}
		br := l.bridge()
		br.Sets[0].Elements = []Element{E(IfName(tap))}
		egress := Jump("o-" + portA)
		if !egressOpen {
			egress = Drop
		}
		allowed := &Set{Name: "allowed", Key: []DataType{TypeIPv4Addr}, Interval: true}
		if allowNet {
			allowed.Elements = []Element{E(Prefix(mustPrefix("10.9.0.2/32")))}
		}
		ip := &Table{ID: IPTable, Sets: []*Set{
			{Name: "zone_of", Key: []DataType{TypeIfName}, Value: TypeCTZone, Elements: []Element{M(Num(4098), IfName(qbr)), M(Num(4098), IfName(qvb))}},
			{Name: "dispatch", Key: []DataType{TypeIfName, TypeMark}, Value: TypeVerdict, Elements: []Element{
				M(Jump("i-"+portA), IfName(qbr), Hex(0)),
				M(egress, IfName(qbr), Hex(dirBit)),
			}},
			allowed,
		}, Chains: []*Chain{
			{Name: "raw", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.PreroutingHook, Priority: knftables.RawPriority}, Rules: []Rule{
				R("", Kw("ct zone set iifname map"), Ref("zone_of")),
			}},
			{Name: "forward", Base: &BaseChain{Type: knftables.FilterType, Hook: knftables.ForwardHook, Priority: knftables.FilterPriority}, Rules: []Rule{
				R("", Kw(fmt.Sprintf("iifname . meta mark & 0x%x vmap", dirBit)), Ref("dispatch")),
			}},
			{Name: "i-" + portA, Rules: []Rule{
				R("state", Kw("ct state established,related counter"), Accept),
				R("sgr allow", Kw("ip saddr"), Ref("allowed"), Kw("counter"), Accept),
				R("fallback", Kw("counter"), Drop),
			}},
			{Name: "o-" + portA, Rules: []Rule{R("sgr egress", Kw("counter"), Accept)}},
		}}
		return &Ruleset{Tables: []*Table{br, ip}}
	}
	s := NewSyncer(host)
	step := func(name string, rs *Ruleset, vmToNet, netToVM bool) {
		t.Helper()
		mustApply(t, s, rs)
		if got := pings(vm, "10.9.0.2"); got != vmToNet {
			t.Errorf("%s: VM pings the network: %v, want %v", name, got, vmToNet)
		}
		if got := pings(net, "10.9.0.1"); got != netToVM {
			t.Errorf("%s: the network pings the VM: %v, want %v", name, got, netToVM)
		}
	}
	step("egress open, nothing allowed in", layout(false, true), true, false)
	if line := lineWith(nft(t, host, "", "list", "chain", "ip", "moat", "i-"+portA), `comment "fallback #`); !strings.Contains(line, "counter packets 1 ") {
		t.Errorf("the fallback drop did not count the one refused ping: %q", line)
	}
	step("the network's address in the set", layout(true, true), true, true)
	step("egress verdict drop (the replies too)", layout(true, false), false, false)
	step("back", layout(false, true), true, false)
}

func lineWith(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
