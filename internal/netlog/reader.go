package netlog

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
)

// copyRange is how much of each packet the kernel copies to the reader:
// the headers, not the data.
const copyRange = 128

// Read reads the packets the kernel logs to group (in the network
// namespace of this process, or of the file descriptor netns when not 0)
// and hands each one of moat's as an event to emit, until ctx ends.
func Read(ctx context.Context, group uint16, netns int, host string, ix *Index, emit func(Event), log *slog.Logger) error {
	nf, err := nflog.Open(&nflog.Config{Group: group, Copymode: nflog.CopyPacket, Bufsize: copyRange,
		QThresh: 1, Timeout: 10, NetNS: netns})
	if err != nil {
		return fmt.Errorf("open netlink log group %d: %w", group, err)
	}
	defer nf.Close()
	hook := func(a nflog.Attribute) int {
		if a.Prefix == nil || a.Payload == nil {
			return 0
		}
		at := time.Now()
		if a.Timestamp != nil {
			at = *a.Timestamp
		}
		if ev, ok := ix.Event(host, *a.Prefix, at, *a.Payload); ok {
			emit(ev)
		}
		return 0
	}
	errFn := func(err error) int {
		if ctx.Err() == nil {
			log.Warn("netlink log group", "group", group, "err", err)
		}
		return 0
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, errFn); err != nil {
		return fmt.Errorf("listen on netlink log group %d: %w", group, err)
	}
	<-ctx.Done()
	return nil
}
