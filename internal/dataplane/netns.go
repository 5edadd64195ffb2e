package dataplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// NetnsDir is where `ip netns` keeps named network namespaces.
const NetnsDir = "/run/netns"

// NetnsExists reports whether the named network namespace exists.
func NetnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(NetnsDir, name))
	return err == nil
}

// AddNetns creates the named network namespace (`ip netns add`).
func AddNetns(ctx context.Context, name string) error {
	if _, err := (Host{}).Run(ctx, nil, "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return nil
}

// DeleteNetns ends the processes left in the named namespace (SIGTERM,
// never this process) and deletes it. A missing namespace is fine.
func DeleteNetns(ctx context.Context, name string) error {
	if !NetnsExists(name) {
		return nil
	}
	if out, err := (Host{}).Run(ctx, nil, "ip", "netns", "pids", name); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	}
	if _, err := (Host{}).Run(ctx, nil, "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}
