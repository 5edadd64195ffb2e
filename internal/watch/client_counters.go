package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/moat-sg/moat/internal/hostview"
)

// CountersFunc reads the hit counters of ports' rules for a counters
// request (the agent's Counters). It must honour ctx.
type CountersFunc func(ctx context.Context, ports []string) hostview.CountersAnswer

const (
	// countersReadTimeout bounds one request's reading and posting: the
	// server's waiter has given up long before.
	countersReadTimeout = 5 * time.Second
	// countersParallel is how many requests the client serves at once;
	// more are answered "busy" at once.
	countersParallel = 2
)

// SetCounters sets what answers the server's counters requests (before
// Run). Without it the client answers that it reads no counters.
func (c *Client) SetCounters(fn CountersFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.countersFn = fn
}

// onCounters serves a counters request apart from the stream: reading the
// stream (and the agent's syncs) never waits for it.
func (c *Client) onCounters(ctx context.Context, req *hostview.CountersRequest) {
	if req == nil || req.ID == "" {
		c.log.Warn("counters event without a request id: ignored")
		return
	}
	c.mu.Lock()
	fn := c.countersFn
	if c.countersSem == nil {
		c.countersSem = make(chan struct{}, countersParallel)
	}
	sem := c.countersSem
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countersReadTimeout)
		defer cancel()
		var a hostview.CountersAnswer
		select {
		case sem <- struct{}{}:
			a = c.readCounters(ctx, fn, req.Ports)
			<-sem
		default:
			a.Error = fmt.Sprintf("the agent is already reading counters for %d requests", countersParallel)
		}
		a.RequestID = req.ID
		if a.ReadAt.IsZero() {
			a.ReadAt = time.Now().UTC()
		}
		if err := c.postCounters(ctx, a); err != nil {
			c.log.Warn("counters answer not delivered", "request", req.ID, "err", err)
		}
	}()
}

// readCounters calls fn; a panic in it becomes the answer's error.
func (c *Client) readCounters(ctx context.Context, fn CountersFunc, ports []string) (a hostview.CountersAnswer) {
	if fn == nil {
		return hostview.CountersAnswer{Error: "this agent reads no counters"}
	}
	if len(ports) > hostview.MaxCountersPorts {
		return hostview.CountersAnswer{Error: fmt.Sprintf("%d ports asked, at most %d", len(ports), hostview.MaxCountersPorts)}
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("reading counters panicked", "panic", r)
			a = hostview.CountersAnswer{Error: fmt.Sprintf("reading counters failed: %v", r)}
		}
	}()
	return fn(ctx, ports)
}

// postCounters posts an answer to the server whose stream brought the
// request.
func (c *Client) postCounters(ctx context.Context, a hostview.CountersAnswer) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.hostURL("/counters"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
