// Package httpserve builds the HTTP server of moat's API with the limits
// every listener facing clients needs: a client that sends its request
// slowly, never reads its answer or idles on a connection is cut, and
// oversized headers are refused, so that a few sockets cannot hold the
// server's goroutines and file descriptors forever.
package httpserve

import (
	"log/slog"
	"net/http"
	"time"
)

// Limits are the server's timeouts and header bound.
type Limits struct {
	// ReadHeaderTimeout bounds reading the request line and headers (the
	// slowloris attack sends them a byte at a time).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout runs from the end of the headers to the end of the
	// response: reading the body, handling, writing. A streaming response
	// opts out with NoWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers together; more
	// is answered 431.
	MaxHeaderBytes int
}

// Defaults suit a Neutron API: a bulk POST of 8 MiB (the API's body limit)
// arrives well within ReadTimeout on any network a cloud's API runs on
// (140 KB/s), and a bulk create of tens of thousands of rules on
// PostgreSQL is answered well within WriteTimeout. 60 s is also what the
// usual HAProxy in front of neutron-server allows (kolla, OpenStack-Ansible).
// neutron-server (eventlet) refuses more than 64 KiB of headers in total
// too (and more than 16 KiB in one line, 8 KiB in the request line); Fernet
// and JWS tokens are a few hundred bytes. neutron-server's only timeout is
// client_socket_timeout, 900 s per socket read or write, which a client
// sending a byte every 899 s never reaches: these bound the whole request.
var Defaults = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       60 * time.Second,
	WriteTimeout:      120 * time.Second,
	IdleTimeout:       120 * time.Second,
	MaxHeaderBytes:    64 << 10,
}

// New returns a server for h with limits l; errors of the connections
// themselves (a TLS handshake, a bad request line) go to log.
func New(h http.Handler, l Limits, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// NoWriteTimeout lifts the server's WriteTimeout for the response being
// written to w: a long-lived stream (a watch of changes) calls it before
// its first write and then bounds each write itself, for example with
// http.NewResponseController(w).SetWriteDeadline before every event.
// Wrappers of the ResponseWriter must have an Unwrap method for it to
// reach the connection; it fails (http.ErrNotSupported) otherwise.
func NoWriteTimeout(w http.ResponseWriter) error {
	return http.NewResponseController(w).SetWriteDeadline(time.Time{})
}
