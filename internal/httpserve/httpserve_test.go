package httpserve_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/httpserve"
)

// safety bounds how long a test waits for the server to act; reaching it
// means the server never did (the test fails rather than hangs).
const safety = 10 * time.Second

// start serves h with limits l on a loopback port until the test ends.
func start(t *testing.T, h http.Handler, l httpserve.Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserve.New(h, l, slog.New(slog.NewTextHandler(t.Output(), nil)))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// long is a limit the tests that check another one never reach.
const long = time.Hour

// echo reads the whole body and answers its length.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, strings.Repeat("x", int(n%10)))
})

// expectCut reads from conn until the server closes it, failing the test
// if the server keeps it open until the safety deadline. It returns what
// the server sent before closing.
func expectCut(t *testing.T, conn net.Conn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(safety))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open (read %q)", b)
	}
	return string(b)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSlowlorisHeadersAreCut: a client that starts its headers and never
// finishes them loses its connection.
func TestSlowlorisHeadersAreCut(t *testing.T) {
	addr := start(t, echo, httpserve.Limits{ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: long, WriteTimeout: long, IdleTimeout: long})
	conn := dial(t, addr)
	io.WriteString(conn, "GET /v2.0/security-groups HTTP/1.1\r\nHost: moat\r\nX-Auth-Token: ")
	if got := expectCut(t, conn); got != "" {
		t.Errorf("answered %q to a request it never read", got)
	}
}

// TestSlowBodyIsCut: a client that sends its headers and then a body
// shorter than its Content-Length holds the handler only until
// ReadTimeout.
func TestSlowBodyIsCut(t *testing.T) {
	addr := start(t, echo, httpserve.Limits{ReadHeaderTimeout: long, ReadTimeout: 200 * time.Millisecond, WriteTimeout: long, IdleTimeout: long})
	conn := dial(t, addr)
	io.WriteString(conn, "POST /v2.0/security-group-rules HTTP/1.1\r\nHost: moat\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"security")
	expectCut(t, conn)
}

// TestIdleKeepAliveIsClosed: a keep-alive connection that sends no next
// request is closed after IdleTimeout.
func TestIdleKeepAliveIsClosed(t *testing.T) {
	addr := start(t, echo, httpserve.Limits{ReadHeaderTimeout: long, ReadTimeout: 0, WriteTimeout: long, IdleTimeout: 200 * time.Millisecond})
	conn := dial(t, addr)
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: moat\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(safety))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %d, close %v", resp.StatusCode, resp.Close)
	}
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the idle keep-alive connection stayed open")
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after the first request: %v, want the server to close", err)
	}
}

// TestDefaultLimits checks the chosen values with a real client: headers
// beyond 64 KiB are 431, a big token is not, and an 8 MiB bulk POST (the
// API's body limit) goes through.
func TestDefaultLimits(t *testing.T) {
	var got int64
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.Copy(io.Discard, r.Body)
	}), httpserve.Defaults)
	cases := []struct {
		name   string
		header int // bytes of X-Auth-Token
		body   int
		want   int
	}{
		{"fernet token", 200, 0, 200},
		{"16 KiB header line (Neutron's max_header_line)", 16 << 10, 0, 200},
		{"100 KiB of headers", 100 << 10, 0, http.StatusRequestHeaderFieldsTooLarge},
		{"8 MiB bulk POST", 200, 8 << 20, 200},
	}
	for _, c := range cases {
		got = -1
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v2.0/security-group-rules", bytes.NewReader(make([]byte, c.body)))
		req.Header.Set("X-Auth-Token", strings.Repeat("t", c.header))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if c.want == 200 && got != int64(c.body) {
			t.Errorf("%s: handler read %d body bytes, want %d", c.name, got, c.body)
		}
	}
}

// TestNoWriteTimeout: a response still being written after WriteTimeout
// is cut, unless its handler opted out (the seam a watch stream uses).
func TestNoWriteTimeout(t *testing.T) {
	const writeTimeout = 100 * time.Millisecond
	for _, optOut := range []bool{false, true} {
		addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if optOut {
				if err := httpserve.NoWriteTimeout(w); err != nil {
					t.Errorf("NoWriteTimeout: %v", err)
				}
			}
			io.WriteString(w, "first event\n")
			http.NewResponseController(w).Flush()
			time.Sleep(3 * writeTimeout) // the deadline has passed for sure
			io.WriteString(w, "second event\n")
		}), httpserve.Limits{ReadHeaderTimeout: long, ReadTimeout: long, WriteTimeout: writeTimeout, IdleTimeout: long})
		resp, err := http.Get("http://" + addr + "/watch")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		complete := err == nil && string(body) == "first event\nsecond event\n"
		if complete != optOut {
			t.Errorf("opt out %v: body %q, err %v", optOut, body, err)
		}
	}
}
