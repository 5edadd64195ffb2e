package wiring

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/moat-sg/moat/internal/hybrid"
)

// links configures devices over netlink in one network namespace.
type links struct {
	h  *netlink.Handle
	ns netns.NsHandle // netns.None(): the calling process's namespace
}

func newLinks(nsName string) (*links, error) {
	if nsName == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("open netlink: %w", err)
		}
		return &links{h: h, ns: netns.None()}, nil
	}
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsName, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("open netlink in network namespace %s: %w", nsName, err)
	}
	return &links{h: h, ns: ns}, nil
}

func (l *links) close() {
	l.h.Close()
	if l.ns.IsOpen() {
		l.ns.Close()
	}
}

// get returns the link named name, or nil when there is none.
func (l *links) get(name string) (netlink.Link, error) {
	link, err := l.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	return link, nil
}

// adoptTap renames dev to portID's tap name (see Wirer.AdoptTap).
func (l *links) adoptTap(portID, dev string) error {
	want := hybrid.TapName(portID)
	link, err := l.get(dev)
	if err != nil {
		return err
	}
	if link == nil {
		if t, err := l.get(want); err == nil && t != nil {
			return nil // renamed already
		}
		return fmt.Errorf("adopt tap %s for port %s: no such device", dev, portID)
	}
	if t, err := l.get(want); err != nil {
		return err
	} else if t != nil {
		return fmt.Errorf("adopt tap %s for port %s: %s exists already", dev, portID, want)
	}
	wasUp := link.Attrs().Flags&net.FlagUp != 0
	if wasUp {
		if err := l.h.LinkSetDown(link); err != nil {
			return fmt.Errorf("adopt tap: set %s down to rename it: %w", dev, err)
		}
	}
	if err := l.h.LinkSetName(link, want); err != nil {
		return fmt.Errorf("adopt tap: rename %s to %s: %w", dev, want, err)
	}
	if wasUp {
		if err := l.h.LinkSetUp(link); err != nil {
			return fmt.Errorf("adopt tap: set %s up: %w", want, err)
		}
	}
	return nil
}

func (l *links) del(name string) error {
	link, err := l.get(name)
	if err != nil || link == nil {
		return err
	}
	if err := l.h.LinkDel(link); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil // gone with its veth peer
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// ensureBridge returns the Linux bridge name, creating it with STP off and
// forward delay 0, and sets its MTU (when mtu > 0) and alias.
func (l *links) ensureBridge(name string, mtu int, alias string) (netlink.Link, error) {
	link, err := l.get(name)
	if err != nil {
		return nil, err
	}
	if link != nil && link.Type() != "bridge" {
		return nil, fmt.Errorf("%s exists but is a %s, not a bridge", name, link.Type())
	}
	if link == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		if mtu > 0 {
			attrs.MTU = mtu
		}
		if err := l.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if link, err = l.h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("look up bridge %s after creating it: %w", name, err)
		}
	}
	if err := l.bridgeNoSTP(link); err != nil {
		return nil, err
	}
	if mtu > 0 && link.Attrs().MTU != mtu {
		if err := l.h.LinkSetMTU(link, mtu); err != nil {
			return nil, fmt.Errorf("set MTU %d on %s: %w", mtu, name, err)
		}
	}
	if alias != "" && link.Attrs().Alias != alias {
		if err := l.h.LinkSetAlias(link, alias); err != nil {
			return nil, fmt.Errorf("set alias of %s: %w", name, err)
		}
	}
	return link, nil
}

// bridgeNoSTP sets a bridge's stp_state and forward_delay to 0 (as
// `ip link set NAME type bridge stp_state 0 forward_delay 0`), which the
// netlink library does not expose.
func (l *links) bridgeNoSTP(link netlink.Link) error {
	s, err := nl.GetNetlinkSocketAt(l.ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("set stp_state/forward_delay of %s: open netlink: %w", link.Attrs().Name, err)
	}
	defer s.Close()
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_FORWARD_DELAY, nl.Uint32Attr(0))
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(0))
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set stp_state 0 forward_delay 0 on %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// ensureVeth returns the veth pair a/b, creating it (and replacing a
// half-deleted one), with the MTU on both ends when mtu > 0.
func (l *links) ensureVeth(a, b string, mtu int) (netlink.Link, netlink.Link, error) {
	la, err := l.get(a)
	if err != nil {
		return nil, nil, err
	}
	lb, err := l.get(b)
	if err != nil {
		return nil, nil, err
	}
	paired := la != nil && lb != nil && la.Type() == "veth" && lb.Type() == "veth" &&
		la.Attrs().ParentIndex == lb.Attrs().Index && lb.Attrs().ParentIndex == la.Attrs().Index
	if !paired {
		// One end missing, not a veth, or a pair with someone else: rebuild.
		for _, name := range []string{a, b} {
			if err := l.del(name); err != nil {
				return nil, nil, err
			}
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = a
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: b}
		if mtu > 0 {
			veth.MTU = mtu
			veth.PeerMTU = uint32(mtu)
		}
		if err := l.h.LinkAdd(veth); err != nil {
			return nil, nil, fmt.Errorf("create veth %s/%s: %w", a, b, err)
		}
		if la, err = l.h.LinkByName(a); err != nil {
			return nil, nil, fmt.Errorf("look up %s after creating it: %w", a, err)
		}
		if lb, err = l.h.LinkByName(b); err != nil {
			return nil, nil, fmt.Errorf("look up %s after creating it: %w", b, err)
		}
	}
	for _, link := range []netlink.Link{la, lb} {
		if mtu > 0 && link.Attrs().MTU != mtu {
			if err := l.h.LinkSetMTU(link, mtu); err != nil {
				return nil, nil, fmt.Errorf("set MTU %d on %s: %w", mtu, link.Attrs().Name, err)
			}
		}
	}
	return la, lb, nil
}

func (l *links) setMaster(link, master netlink.Link) error {
	if link.Attrs().MasterIndex == master.Attrs().Index {
		return nil
	}
	if err := l.h.LinkSetMasterByIndex(link, master.Attrs().Index); err != nil {
		return fmt.Errorf("add %s to bridge %s: %w", link.Attrs().Name, master.Attrs().Name, err)
	}
	return nil
}

func (l *links) up(link netlink.Link) error {
	if link.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := l.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// disableIPv6 sets net.ipv6.conf.DEV.disable_ipv6=1, as os-vif does for the
// hybrid devices (no link-local addresses, no DAD or router solicitations
// from the host on the VM's segment). A kernel without IPv6 is fine.
func (l *links) disableIPv6(dev string) error {
	return l.sysctl("net/ipv6/conf/"+dev+"/disable_ipv6", "1", true)
}

// sysctl writes /proc/sys/KEY in the links' namespace. /proc/sys/net
// follows the network namespace of the thread that opens it, so for
// another namespace a locked OS thread enters it and is then thrown away.
func (l *links) sysctl(key, value string, missingOK bool) error {
	write := func() error {
		path := "/proc/sys/" + key
		cur, err := os.ReadFile(path)
		if err != nil {
			if missingOK && errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
		if string(cur) == value+"\n" || string(cur) == value {
			return nil
		}
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	}
	if !l.ns.IsOpen() {
		return write()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread returns to its namespace when done; if it cannot, it
		// stays locked and the runtime ends it with the goroutine. (Go may
		// run this on the main thread, whose namespace is the process's
		// in /proc/PID/ns/net: it must not stay behind.)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("sysctl %s: open the current network namespace: %w", key, err)
			return
		}
		defer orig.Close()
		if err := netns.Set(l.ns); err != nil {
			errc <- fmt.Errorf("sysctl %s: enter network namespace: %w", key, err)
			return
		}
		err = write()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
