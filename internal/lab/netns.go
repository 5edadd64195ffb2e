package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/moat-sg/moat/internal/dataplane"
)

// labNetns lists the namespaces of lab name: the NAME-vmN first, then the
// hosts (NAME-host, NAME-hostN), then NAME-api and NAME-sw.
func labNetns(name string) ([]string, error) {
	entries, err := os.ReadDir(dataplane.NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	numbered := func(n, prefix string) bool {
		num, ok := strings.CutPrefix(n, prefix)
		if !ok || num == "" {
			return false
		}
		_, err := strconv.Atoi(num)
		return err == nil
	}
	var vms, hosts, infra []string
	for _, e := range entries {
		switch n := e.Name(); {
		case numbered(n, name+"-vm"):
			vms = append(vms, n)
		case n == HostNetns(name) || numbered(n, name+"-host"):
			hosts = append(hosts, n)
		case n == APINetns(name) || n == SwitchNetns(name):
			infra = append(infra, n)
		}
	}
	sort.Strings(infra) // NAME-api before NAME-sw
	return append(append(vms, hosts...), infra...), nil
}

// InNetns runs f on an OS thread inside the named namespace, then moves
// the thread back. If it cannot move back, the thread stays locked and the
// runtime ends it with the goroutine, so no other code ever runs in the
// namespace by accident. (Go may schedule this on the main thread, whose
// namespace is the process's in /proc/PID/ns/net: it must not stay there.)
func InNetns(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("open the current network namespace: %w", err)
			return // thread discarded
		}
		defer orig.Close()
		ns, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open network namespace %s: %w", name, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", name, err)
			return // thread discarded
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// dialIn returns a DialContext whose sockets live in the named namespace:
// the socket is created on a thread inside it, and stays there.
func dialIn(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNetns(name, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// sysctl writes /proc/sys/KEY inside a namespace (/proc/sys/net follows
// the opening thread's network namespace).
func sysctl(ns, key, value string) error {
	return InNetns(ns, func() error {
		if err := os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}
