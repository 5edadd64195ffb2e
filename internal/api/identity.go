package api

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
)

// Authenticator turns a request into the identity it runs as, or refuses it.
type Authenticator interface {
	// Authenticate returns the caller's context. An error wrapping
	// ErrUnauthenticated means the request must be answered 401 (the
	// client should get a new token); any other error means the identity
	// could not be established right now (Keystone down, slow or broken)
	// and the request is answered 503, as keystonemiddleware does: a 401
	// would only make clients re-authenticate against the broken Keystone.
	Authenticate(r *http.Request) (*neutron.Context, error)
	// Challenge is the WWW-Authenticate header of a 401, or "".
	Challenge() string
}

// ErrUnauthenticated is the refusal of a request's credentials (401).
var ErrUnauthenticated = errors.New("the request you have made requires authentication")

// IdentityConfig is the server's identity configuration (--auth and the
// Keystone flags).
type IdentityConfig struct {
	Mode        string // noauth, headers or keystone
	KeystoneURL string // the Keystone v3 endpoint, with Mode keystone
	// KeystoneTimeout bounds one token validation; 0 means
	// DefaultKeystoneTimeout.
	KeystoneTimeout time.Duration
}

// NewAuthenticator builds the authenticator for --auth.
func NewAuthenticator(c IdentityConfig) (Authenticator, error) {
	switch c.Mode {
	case "noauth", "":
		return NoAuth{}, nil
	case "headers":
		return HeaderAuth{}, nil
	case "keystone":
		if c.KeystoneURL == "" {
			return nil, fmt.Errorf("--auth keystone needs --keystone-url (e.g. http://keystone:5000/v3)")
		}
		u, err := url.Parse(c.KeystoneURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("--keystone-url %q is not an absolute URL", c.KeystoneURL)
		}
		if c.KeystoneTimeout < 0 {
			return nil, fmt.Errorf("--keystone-timeout %s must not be negative", c.KeystoneTimeout)
		}
		k := NewKeystoneAuth(c.KeystoneURL, newKeystoneClient())
		if c.KeystoneTimeout > 0 {
			k.Timeout = c.KeystoneTimeout
		}
		return k, nil
	}
	return nil, fmt.Errorf("unknown --auth %q (want noauth, headers or keystone)", c.Mode)
}

// newKeystoneClient is the HTTP client of token validation: the default
// transport keeps only 2 idle connections per host, too few for a busy
// API validating tokens concurrently.
func newKeystoneClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}

// authenticate establishes the caller of r or answers the request itself:
// 401 with the challenge when the credentials are refused, 503 when they
// could not be checked.
func authenticate(w http.ResponseWriter, r *http.Request, auth Authenticator, log *slog.Logger) (*neutron.Context, bool) {
	ctx, err := auth.Authenticate(r)
	switch {
	case err == nil:
		return ctx, true
	case errors.Is(err, ErrUnauthenticated):
		writeUnauthorized(w, auth.Challenge())
	default:
		log.Error("cannot validate the request's token", "method", r.Method, "path", r.URL.Path,
			"request_id", w.Header().Get(requestIDHeader), "err", err)
		writeServiceUnavailable(w)
	}
	return nil, false
}

// NoAuth is Neutron's auth_strategy=noauth: a request without X-Project-Id
// is an admin of project "fake_project_id"; a request that names a project
// gets Neutron's admin context without a project (so it sees everything
// and must name the owner of what it creates). X-Auth-Token is ignored.
type NoAuth struct{}

func (NoAuth) Authenticate(r *http.Request) (*neutron.Context, error) {
	roles := splitRoles(r.Header.Get("X-Roles"))
	if r.Header.Get("X-Project-Id") == "" {
		user := r.Header.Get("X-User-Id")
		if user == "" {
			user = "fake_user_id"
		}
		return &neutron.Context{UserID: user, ProjectID: "fake_project_id", Roles: roles, IsAdmin: true}, nil
	}
	return &neutron.Context{Roles: roles, IsAdmin: true}, nil
}

func (NoAuth) Challenge() string { return "" }

// HeaderAuth trusts X-User-Id, X-Project-Id and X-Roles as a Keystone auth
// proxy (keystonemiddleware in front of moat) sets them.
type HeaderAuth struct{}

func (HeaderAuth) Authenticate(r *http.Request) (*neutron.Context, error) {
	user := r.Header.Get("X-User-Id")
	if user == "" {
		return nil, fmt.Errorf("no X-User-Id: %w", ErrUnauthenticated)
	}
	return contextFor(user, r.Header.Get("X-Project-Id"), splitRoles(r.Header.Get("X-Roles"))), nil
}

func (HeaderAuth) Challenge() string { return "" }

func splitRoles(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// contextFor applies Neutron's default policy: the admin role is admin,
// advsvc is the advanced-services role.
func contextFor(user, project string, roles []string) *neutron.Context {
	c := &neutron.Context{UserID: user, ProjectID: project, Roles: roles}
	for _, r := range roles {
		switch strings.ToLower(r) {
		case "admin":
			c.IsAdmin = true
		case "advsvc":
			c.IsAdvsvc = true
		}
	}
	return c
}

// KeystoneAuth validates X-Auth-Token against Keystone v3 (GET
// /v3/auth/tokens with X-Subject-Token; the token validates itself, which
// Keystone's default policy allows, so moat needs no service account) and
// caches answers briefly.
type KeystoneAuth struct {
	base   string // .../v3
	client *http.Client
	// TTL bounds how long a valid token's identity is reused (never past
	// the token's expires_at); NegativeTTL how long a refused token stays
	// refused without asking again.
	TTL, NegativeTTL time.Duration
	// Timeout bounds one validation: a Keystone slower than that is
	// treated as down (503).
	Timeout time.Duration
	// MaxTokens and MaxRefusals bound the two caches separately, so that
	// a flood of bad tokens (each one a new refusal) only ever evicts
	// other refusals, never the identities of real callers.
	MaxTokens, MaxRefusals int
	now                    func() time.Time

	mu             sync.Mutex
	valid, refused tokenCache
}

// DefaultKeystoneTimeout is how long moat waits for Keystone to validate a
// token before answering 503.
const DefaultKeystoneTimeout = 10 * time.Second

// NewKeystoneAuth validates tokens against the Keystone v3 endpoint at base.
func NewKeystoneAuth(base string, client *http.Client) *KeystoneAuth {
	base = strings.TrimRight(base, "/")
	if !strings.HasSuffix(base, "/v3") {
		base += "/v3"
	}
	return &KeystoneAuth{base: base, client: client, TTL: 60 * time.Second, NegativeTTL: 10 * time.Second,
		Timeout: DefaultKeystoneTimeout, MaxTokens: 10000, MaxRefusals: 10000, now: time.Now}
}

// Challenge points clients at Keystone like keystonemiddleware does.
func (k *KeystoneAuth) Challenge() string {
	return fmt.Sprintf("Keystone uri=%q", strings.TrimSuffix(k.base, "/v3"))
}

func (k *KeystoneAuth) Authenticate(r *http.Request) (*neutron.Context, error) {
	token := r.Header.Get("X-Auth-Token")
	if token == "" {
		return nil, fmt.Errorf("no X-Auth-Token: %w", ErrUnauthenticated)
	}
	// The caches hold a hash, not the token: a fixed 32 bytes whatever
	// the client sent, and no credentials in memory.
	key := sha256.Sum256([]byte(token))
	now := k.now()
	k.mu.Lock()
	if e := k.valid.get(key, now); e != nil {
		k.mu.Unlock()
		return e.ctx, nil
	}
	if e := k.refused.get(key, now); e != nil {
		k.mu.Unlock()
		return nil, fmt.Errorf("token refused by Keystone (cached): %w", ErrUnauthenticated)
	}
	k.mu.Unlock()

	ctx, expires, err := k.validate(r.Context(), token)
	now = k.now()
	if err == nil && !now.Before(expires) {
		// keystonemiddleware refuses an expired token whatever Keystone
		// answered (will_expire_soon(stale_duration=0)).
		err = fmt.Errorf("token expired at %s: %w", expires.Format(time.RFC3339), ErrUnauthenticated)
	}
	switch {
	case errors.Is(err, ErrUnauthenticated):
		k.mu.Lock()
		k.refused.put(key, nil, now.Add(k.NegativeTTL), k.MaxRefusals)
		k.mu.Unlock()
		return nil, err
	case err != nil:
		// Keystone unreachable, slow or answering garbage: not the
		// client's fault, and not remembered.
		return nil, err
	}
	until := now.Add(k.TTL)
	if expires.Before(until) {
		until = expires
	}
	k.mu.Lock()
	k.valid.put(key, ctx, until, k.MaxTokens)
	k.mu.Unlock()
	return ctx, nil
}

// validate asks Keystone about token. An error wrapping ErrUnauthenticated
// means Keystone refused the token; any other error that it could not say.
func (k *KeystoneAuth) validate(ctx context.Context, token string) (*neutron.Context, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, k.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+"/auth/tokens", nil)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keystone request: %w", err)
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("X-Subject-Token", token)
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keystone: %w", err)
	}
	defer func() {
		// Drain what is left so that the connection is reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusNotFound:
		// The token authenticating the request is the one validated: 401
		// (it authenticates nothing) and 404 (it is not a valid subject)
		// both refuse it.
		return nil, time.Time{}, fmt.Errorf("keystone answered %s: %w", resp.Status, ErrUnauthenticated)
	default:
		// 403 included: a self-validation Keystone's policy forbids is a
		// Keystone configuration problem that a new token cannot solve
		// (keystonemiddleware also answers 503 for it).
		return nil, time.Time{}, fmt.Errorf("keystone answered %s", resp.Status)
	}
	var body struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
			Project *struct {
				ID string `json:"id"`
			} `json:"project"`
			Roles []struct {
				Name string `json:"name"`
			} `json:"roles"`
		} `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, time.Time{}, fmt.Errorf("decode keystone token: %w", err)
	}
	if body.Token.User.ID == "" {
		return nil, time.Time{}, errors.New("keystone token without a user")
	}
	expires, err := time.Parse(time.RFC3339Nano, body.Token.ExpiresAt)
	if err != nil {
		// Without its expiry a token's life cannot be bounded.
		return nil, time.Time{}, fmt.Errorf("keystone token expires_at %q: %w", body.Token.ExpiresAt, err)
	}
	project := ""
	if body.Token.Project != nil {
		project = body.Token.Project.ID
	}
	var roles []string
	for _, r := range body.Token.Roles {
		roles = append(roles, r.Name)
	}
	return contextFor(body.Token.User.ID, project, roles), expires, nil
}

// tokenCache remembers Keystone's answers by token hash until they expire,
// holding at most a given number; when full, the oldest entry makes room.
// The zero value is empty and ready. Not safe for concurrent use.
type tokenCache struct {
	m     map[[sha256.Size]byte]*list.Element
	order list.List // of *tokenEntry, oldest first
}

type tokenEntry struct {
	key     [sha256.Size]byte
	ctx     *neutron.Context
	expires time.Time
}

// get returns the live entry for key, or nil (forgetting an expired one).
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) *tokenEntry {
	el, ok := c.m[key]
	if !ok {
		return nil
	}
	e := el.Value.(*tokenEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.m, key)
		return nil
	}
	return e
}

// put records key's answer until expires, evicting the oldest entries
// beyond max.
func (c *tokenCache) put(key [sha256.Size]byte, ctx *neutron.Context, expires time.Time, max int) {
	if max < 1 {
		return
	}
	if c.m == nil {
		c.m = map[[sha256.Size]byte]*list.Element{}
	}
	if el, ok := c.m[key]; ok {
		c.order.Remove(el)
	}
	c.m[key] = c.order.PushBack(&tokenEntry{key: key, ctx: ctx, expires: expires})
	for len(c.m) > max {
		oldest := c.order.Front()
		c.order.Remove(oldest)
		delete(c.m, oldest.Value.(*tokenEntry).key)
	}
}

func (c *tokenCache) len() int { return len(c.m) }

// writeUnauthorized is keystonemiddleware's 401.
func writeUnauthorized(w http.ResponseWriter, challenge string) {
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": object{
		{"code", 401}, {"title", "Unauthorized"}, {"message", "The request you have made requires authentication."},
	}})
}

// writeServiceUnavailable is keystonemiddleware's 503 when it cannot
// validate a token (webob's HTTPServiceUnavailable as webob 1.8 renders it
// for a JSON client, markup and string code included), without a
// challenge: the client's credentials were not refused.
func writeServiceUnavailable(w http.ResponseWriter) {
	writeJSON(w, http.StatusServiceUnavailable, object{
		{"message", "The server is currently unavailable. Please try again at a later time.<br /><br />\nThe Keystone service is temporarily unavailable.\n\n"},
		{"code", "503 Service Unavailable"},
		{"title", "Service Unavailable"},
	})
}
