package api

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedKeystone is a Keystone whose answer to GET /v3/auth/tokens the
// test chooses, and can change, while moat talks to it over HTTP.
type scriptedKeystone struct {
	calls   atomic.Int32
	mu      sync.Mutex
	answer  http.HandlerFunc
	release chan struct{} // closed when the test ends: frees stuck answers
}

func (k *scriptedKeystone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.calls.Add(1)
	k.mu.Lock()
	answer := k.answer
	k.mu.Unlock()
	answer(w, r)
}

func (k *scriptedKeystone) set(answer http.HandlerFunc) {
	k.mu.Lock()
	k.answer = answer
	k.mu.Unlock()
}

// startKeystone serves k over HTTP until the test ends.
func startKeystone(t *testing.T, answer http.HandlerFunc) (*scriptedKeystone, *httptest.Server) {
	t.Helper()
	k := &scriptedKeystone{answer: answer, release: make(chan struct{})}
	srv := httptest.NewServer(k)
	t.Cleanup(func() {
		close(k.release)
		srv.Close()
	})
	return k, srv
}

// tokenAnswer answers 200 with a token body, as Keystone validates a token.
func tokenAnswer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Subject-Token", r.Header.Get("X-Subject-Token"))
		io.WriteString(w, body)
	}
}

func statusAnswer(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error": {"code": %d, "title": %q, "message": "scripted"}}`, status, http.StatusText(status))
	}
}

// keystoneGet sends GET /v2.0/security-groups with token to the moat
// server at url.
func keystoneGet(t *testing.T, url, token string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/v2.0/security-groups?fields=project_id", nil)
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// keystonemiddleware's 503 as webob renders it for a JSON client; moat's
// encoder escapes < and > as encoding/json does (the same JSON string).
const serviceUnavailableBody = `{"message":"The server is currently unavailable. Please try again at a later time.\u003cbr /\u003e\u003cbr /\u003e\nThe Keystone service is temporarily unavailable.\n\n","code":"503 Service Unavailable","title":"Service Unavailable"}`

// TestKeystoneFailureIs503 covers a Keystone that cannot say whether the
// token is valid: unreachable, slower than the timeout, answering an
// error, or 200 with a body that is not a usable token. The client gets
// keystonemiddleware's 503, never a 401 (which would make it
// re-authenticate against the broken Keystone), and the failure is not
// remembered: once Keystone is back, the same token works.
func TestKeystoneFailureIs503(t *testing.T) {
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	valid := `{"token": ` + keystoneToken("u", "p", []string{"member"}, time.Now().Add(time.Hour)) + `}`
	cases := []struct {
		name   string
		answer func(k *scriptedKeystone) http.HandlerFunc
		down   bool
	}{
		{name: "down", down: true},
		{name: "slow", answer: func(k *scriptedKeystone) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				select { // never answers while moat waits
				case <-r.Context().Done():
				case <-k.release:
				}
			}
		}},
		{name: "500", answer: func(*scriptedKeystone) http.HandlerFunc { return statusAnswer(500) }},
		{name: "502", answer: func(*scriptedKeystone) http.HandlerFunc { return statusAnswer(502) }},
		{name: "503", answer: func(*scriptedKeystone) http.HandlerFunc { return statusAnswer(503) }},
		{name: "403 policy", answer: func(*scriptedKeystone) http.HandlerFunc { return statusAnswer(403) }},
		{name: "200 not JSON", answer: func(*scriptedKeystone) http.HandlerFunc { return tokenAnswer("<html>proxy error</html>") }},
		{name: "200 cut short", answer: func(*scriptedKeystone) http.HandlerFunc { return tokenAnswer(valid[:len(valid)/2]) }},
		{name: "200 without user", answer: func(*scriptedKeystone) http.HandlerFunc {
			return tokenAnswer(`{"token": {"expires_at": "` + later + `", "project": {"id": "p"}, "roles": []}}`)
		}},
		{name: "200 without expires_at", answer: func(*scriptedKeystone) http.HandlerFunc {
			return tokenAnswer(`{"token": {"user": {"id": "u"}, "project": {"id": "p"}, "roles": []}}`)
		}},
		{name: "200 bad expires_at", answer: func(*scriptedKeystone) http.HandlerFunc {
			return tokenAnswer(`{"token": {"user": {"id": "u"}, "project": {"id": "p"}, "roles": [], "expires_at": "tomorrow"}}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ks, ksrv := startKeystone(t, tokenAnswer(valid))
			if c.answer != nil {
				ks.set(c.answer(ks))
			}
			base := ksrv.URL
			if c.down {
				// A port nothing listens on: connection refused.
				dead := httptest.NewServer(http.NotFoundHandler())
				base = dead.URL
				dead.Close()
			}
			k := NewKeystoneAuth(base, ksrv.Client())
			k.Timeout = 100 * time.Millisecond
			srv := newTestServer(t, k)
			status, h, body := keystoneGet(t, srv.URL, "t")
			if status != http.StatusServiceUnavailable || body != serviceUnavailableBody || h.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q %s, want keystonemiddleware's 503", status, h.Get("Content-Type"), body)
			}
			if h.Get("WWW-Authenticate") != "" {
				t.Errorf("503 with a challenge %q: the token was not refused", h.Get("WWW-Authenticate"))
			}
			if !requestIDRe.MatchString(h.Get(requestIDHeader)) {
				t.Errorf("no request id on the 503")
			}
			if c.down {
				return
			}
			// Keystone recovers: the failure was not cached.
			ks.set(tokenAnswer(valid))
			if status, _, body := keystoneGet(t, srv.URL, "t"); status != 200 || body != `{"security_groups":[{"project_id":"p"}]}` {
				t.Fatalf("after Keystone recovered: %d %s", status, body)
			}
		})
	}
}

// TestKeystoneRefusals: Keystone's own refusals of the token are 401 with
// the challenge, and so is a token Keystone vouches for (200) whose
// expires_at has passed, as keystonemiddleware refuses it.
func TestKeystoneRefusals(t *testing.T) {
	past := time.Now().Add(-time.Minute)
	cases := []struct {
		name   string
		answer http.HandlerFunc
	}{
		{"401", statusAnswer(401)},
		{"404", statusAnswer(404)},
		{"200 expired", tokenAnswer(`{"token": ` + keystoneToken("u", "p", []string{"admin"}, past) + `}`)},
		{"200 expiring now", tokenAnswer(`{"token": ` + keystoneToken("u", "p", []string{"admin"}, time.Now()) + `}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ks, ksrv := startKeystone(t, c.answer)
			k := NewKeystoneAuth(ksrv.URL, ksrv.Client())
			srv := newTestServer(t, k)
			for i := 0; i < 2; i++ {
				status, h, body := keystoneGet(t, srv.URL, "t")
				if status != 401 || h.Get("WWW-Authenticate") != `Keystone uri="`+ksrv.URL+`"` ||
					body != `{"error":{"code":401,"title":"Unauthorized","message":"The request you have made requires authentication."}}` {
					t.Fatalf("request %d: %d %q %s, want 401", i, status, h.Get("WWW-Authenticate"), body)
				}
			}
			// The refusal is remembered (NegativeTTL).
			if n := ks.calls.Load(); n != 1 {
				t.Errorf("%d Keystone calls for two requests, want 1", n)
			}
		})
	}
}

// TestKeystoneExpiryUsesTheClock: the expiry check runs against moat's
// clock when Keystone answers, not only when a cached answer is reused.
func TestKeystoneExpiryUsesTheClock(t *testing.T) {
	expires := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	_, ksrv := startKeystone(t, tokenAnswer(`{"token": `+keystoneToken("u", "p", []string{"member"}, expires)+`}`))
	for _, c := range []struct {
		now  time.Time
		want error
	}{
		{expires.Add(-time.Second), nil},
		{expires, ErrUnauthenticated},
		{expires.Add(time.Hour), ErrUnauthenticated},
	} {
		k := NewKeystoneAuth(ksrv.URL, ksrv.Client())
		k.now = func() time.Time { return c.now }
		req := httptest.NewRequest(http.MethodGet, "/v2.0/security-groups", nil)
		req.Header.Set("X-Auth-Token", "t")
		if _, err := k.Authenticate(req); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("at %s: %v, want %v", c.now, err, c.want)
		}
	}
}

// TestKeystoneRefusalFloodKeepsValidTokens: a flood of bad tokens, far
// more than the refusal cache holds, evicts only refusals. The real
// caller's cached identity survives (Keystone is not asked again) and
// neither cache grows past its bound.
func TestKeystoneRefusalFloodKeepsValidTokens(t *testing.T) {
	good := keystoneToken("alice", "projecta", []string{"member"}, time.Now().Add(time.Hour))
	ks, ksrv := startKeystone(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Subject-Token") == "good" {
			tokenAnswer(`{"token": `+good+`}`)(w, r)
			return
		}
		statusAnswer(404)(w, r)
	})
	k := NewKeystoneAuth(ksrv.URL, ksrv.Client())
	k.MaxTokens, k.MaxRefusals = 20, 50
	auth := func(token string) error {
		req := httptest.NewRequest(http.MethodGet, "/v2.0/security-groups", nil)
		req.Header.Set("X-Auth-Token", token)
		_, err := k.Authenticate(req)
		return err
	}
	if err := auth("good"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4*k.MaxRefusals; i++ {
		// Long tokens: the caches hold hashes, not what clients send.
		if err := auth(fmt.Sprintf("bogus-%d-%s", i, strings.Repeat("x", 4096))); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("bogus token %d: %v", i, err)
		}
	}
	before := ks.calls.Load()
	if err := auth("good"); err != nil {
		t.Fatalf("good token after the flood: %v", err)
	}
	if n := ks.calls.Load() - before; n != 0 {
		t.Errorf("the flood evicted the good token: %d more Keystone calls", n)
	}
	k.mu.Lock()
	valid, refused := k.valid.len(), k.refused.len()
	k.mu.Unlock()
	if valid != 1 || refused != k.MaxRefusals {
		t.Errorf("caches hold %d valid, %d refused; want 1, %d", valid, refused, k.MaxRefusals)
	}
	// The most recent refusals are the ones kept.
	before = ks.calls.Load()
	auth(fmt.Sprintf("bogus-%d-%s", 4*k.MaxRefusals-1, strings.Repeat("x", 4096)))
	if n := ks.calls.Load() - before; n != 0 {
		t.Errorf("the newest refusal was evicted: %d more Keystone calls", n)
	}
}

func TestTokenCache(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	type op struct {
		put     string        // put this key (expiring at t0+ttl), or
		get     string        // get this key at t0+at
		ttl, at time.Duration //
		found   bool          // get's expected result
	}
	cases := []struct {
		name string
		max  int
		ops  []op
	}{
		{"oldest evicted first", 2, []op{
			{put: "a", ttl: time.Hour}, {put: "b", ttl: time.Hour}, {put: "c", ttl: time.Hour},
			{get: "a"}, {get: "b", found: true}, {get: "c", found: true},
		}},
		{"re-put refreshes the age", 2, []op{
			{put: "a", ttl: time.Hour}, {put: "b", ttl: time.Hour}, {put: "a", ttl: time.Hour}, {put: "c", ttl: time.Hour},
			{get: "a", found: true}, {get: "b"}, {get: "c", found: true},
		}},
		{"expired is a miss", 2, []op{
			{put: "a", ttl: time.Minute}, {get: "a", at: time.Minute - 1, found: true}, {get: "a", at: time.Minute}, {get: "a"},
		}},
		{"zero bound keeps nothing", 0, []op{{put: "a", ttl: time.Hour}, {get: "a"}}},
	}
	for _, c := range cases {
		var tc tokenCache
		for i, o := range c.ops {
			if o.put != "" {
				tc.put(key(o.put), nil, t0.Add(o.ttl), c.max)
				if tc.len() > c.max {
					t.Errorf("%s: op %d: %d entries, bound %d", c.name, i, tc.len(), c.max)
				}
				continue
			}
			if got := tc.get(key(o.get), t0.Add(o.at)) != nil; got != o.found {
				t.Errorf("%s: op %d: get %q at +%s: found %v, want %v", c.name, i, o.get, o.at, got, o.found)
			}
		}
	}
}
