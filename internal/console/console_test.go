package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Names and descriptions are the users': the pages show them as text.
func TestHostileNamesAreText(t *testing.T) {
	s := startServer(t, "", nil)
	const name = `<script>alert(1)</script>`
	const desc = `"><img src=x onerror=alert(2)>`
	gid, pid, _ := fixture(t, s.URL, name, `<b onmouseover=alert(3)>vm`, "host1")
	apiDo(t, s.URL, http.MethodPut, "security-groups/"+gid, "", `{"security_group": {"description": "`+strings.ReplaceAll(desc, `"`, `\"`)+`"}}`, nil)
	apiDo(t, s.URL, http.MethodPost, "security-group-rules", "", `{"security_group_rule": {"security_group_id": "`+gid+`", "direction": "ingress", "description": "</td><script>alert(4)</script>"}}`, nil)
	b := newBrowser(t, s.URL)
	for _, path := range []string{"/ui/", "/ui/security-groups/" + gid, "/ui/ports", "/ui/ports/" + pid, "/ui/trace?port=" + pid} {
		code, h, body := b.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, code, body)
		}
		if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: Content-Type %q, CSP %q", path, h.Get("Content-Type"), h.Get("Content-Security-Policy"))
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<b onmouseover", "</td><script>"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: the page holds %q as markup", path, bad)
			}
		}
	}
	_, _, body := b.get("/ui/security-groups/" + gid)
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;", "&lt;/td&gt;&lt;script&gt;alert(4)&lt;/script&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("the group page lacks the escaped text %q", want)
		}
	}
}

// A POST needs the page's token, from the console's own origin.
func TestCSRF(t *testing.T) {
	s := startServer(t, "", nil)
	b := newBrowser(t, s.URL)
	token := b.csrf()
	created := func() int {
		var out struct {
			Groups []struct{ Name string } `json:"security_groups"`
		}
		apiDo(t, s.URL, http.MethodGet, "security-groups?name=csrf-test", "", "", &out)
		return len(out.Groups)
	}
	for _, c := range []struct {
		name   string
		token  string
		origin string
		fresh  bool // a browser without the console's cookies
	}{
		{name: "no token"},
		{name: "wrong token", token: strings.Repeat("0", 64)},
		{name: "another origin", token: token, origin: "http://evil.example"},
		{name: "token of another browser", token: token, fresh: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := b
			if c.fresh {
				client = newBrowser(t, s.URL)
			}
			form := url.Values{"name": {"csrf-test"}, "csrf": {c.token}}
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/ui/security-groups", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if c.origin != "" {
				req.Header.Set("Origin", c.origin)
			}
			code, _, body := client.do(req)
			if code != http.StatusForbidden {
				t.Errorf("POST: %d, want 403\n%s", code, body)
			}
			if n := created(); n != 0 {
				t.Fatalf("the refused POST created %d groups", n)
			}
		})
	}
	code, h, body := b.post("/ui/security-groups", url.Values{"name": {"csrf-test"}})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/ui/security-groups/") {
		t.Fatalf("POST with the token: %d %s\n%s", code, h.Get("Location"), body)
	}
	if created() != 1 {
		t.Fatal("the POST with the token created no group")
	}
	// The CSRF cookie is HttpOnly and SameSite=Strict.
	u, _ := url.Parse(s.URL + "/ui/")
	for _, ck := range b.c.Jar.Cookies(u) {
		if ck.Name == csrfCookie {
			return
		}
	}
	t.Error("no CSRF cookie")
}

func TestCookieAttributes(t *testing.T) {
	ks := startKeystone(t)
	s := startServer(t, ks, nil)
	b := newBrowser(t, s.URL)
	token := b.csrf()
	form := url.Values{"username": {"alice"}, "password": {"alice-pw"}, "project": {"alpha"}, "csrf": {token}}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/ui/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var found bool
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			found = true
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui/" || ck.Expires.IsZero() {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path /ui/, an expiry", ck)
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie after sign-in (%s)", resp.Status)
	}
}

// Under Keystone the console signs in and a member sees only their
// project; an admin sees all and can switch projects.
func TestKeystoneSignInAndProjectScoping(t *testing.T) {
	ks := startKeystone(t)
	s := startServer(t, ks, nil)

	anon := newBrowser(t, s.URL)
	code, h, _ := anon.get("/ui/ports")
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/ui/login?next=%2Fui%2Fports") {
		t.Fatalf("unsigned GET: %d %s, want a redirect to the sign-in", code, h.Get("Location"))
	}
	code, _, body := anon.post("/ui/login", url.Values{"username": {"alice"}, "password": {"wrong"}, "project": {"alpha"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "Invalid credentials") {
		t.Fatalf("bad password: %d\n%s", code, body)
	}

	alice, bob, root := newBrowser(t, s.URL), newBrowser(t, s.URL), newBrowser(t, s.URL)
	signIn(t, alice, "alice", "alice-pw", "alpha")
	signIn(t, bob, "bob", "bob-pw", "beta")
	signIn(t, root, "root", "root-pw", "admin")
	mk := func(b *browser, name string) string {
		code, h, body := b.post("/ui/security-groups", url.Values{"name": {name}})
		if code != http.StatusSeeOther {
			t.Fatalf("create %s: %d\n%s", name, code, body)
		}
		return strings.TrimPrefix(h.Get("Location")[:len("/ui/security-groups/")+36], "/ui/security-groups/")
	}
	alphaID := mk(alice, "alpha-web")
	betaID := mk(bob, "beta-db")

	_, _, body = alice.get("/ui/")
	if !strings.Contains(body, "alpha-web") || strings.Contains(body, "beta-db") {
		t.Errorf("alice's list: want alpha-web only\n%s", body)
	}
	if strings.Contains(body, `id="project-select"`) {
		t.Error("a member got the project selector")
	}
	if code, _, _ := alice.get("/ui/security-groups/" + betaID); code != http.StatusNotFound {
		t.Errorf("alice GET bob's group: %d, want 404", code)
	}
	if code, _, _ := alice.post("/ui/security-groups/"+betaID+"/delete", url.Values{}); code != http.StatusNotFound {
		t.Errorf("alice deletes bob's group: %d, want 404", code)
	}
	if code, _, _ := alice.post("/ui/project", url.Values{"project": {"p-beta"}}); code != http.StatusForbidden {
		t.Errorf("alice switches project: %d, want 403", code)
	}

	_, _, body = root.get("/ui/")
	if !strings.Contains(body, "alpha-web") || !strings.Contains(body, "beta-db") || !strings.Contains(body, `id="project-select"`) {
		t.Errorf("the admin's list: want both groups and the project selector\n%s", body)
	}
	_, _, body = root.get("/ui/ports")
	if !strings.Contains(body, `name="next" value="/ui/ports"`) {
		t.Error("the project selector does not return to the page it is on")
	}
	code, h, _ = root.post("/ui/project", url.Values{"project": {"p-alpha"}, "next": {"/ui/"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/" {
		t.Fatalf("switch project: %d %s", code, h.Get("Location"))
	}
	_, _, body = root.get("/ui/")
	if !strings.Contains(body, "alpha-web") || strings.Contains(body, "beta-db") {
		t.Errorf("the admin viewing p-alpha: want alpha-web only\n%s", body)
	}
	// What the admin creates while viewing p-alpha is p-alpha's.
	mk(root, "made-by-admin")
	_, _, body = alice.get("/ui/")
	if !strings.Contains(body, "made-by-admin") {
		t.Error("the group the admin created in p-alpha is not alice's")
	}
	if code, _, _ := root.get("/ui/security-groups/" + alphaID); code != http.StatusOK {
		t.Errorf("admin GET alice's group: %d", code)
	}

	// Which host a port is on is the admins' to know, on every page.
	portID, _ := adminPort(t, s.URL, ks, alphaID)
	for _, path := range []string{"/ui/ports/" + portID, "/ui/ports", "/ui/trace?port=" + portID + "&direction=ingress&protocol=tcp&src=192.0.2.9"} {
		code, _, body := alice.get(path)
		if code != http.StatusOK || strings.Contains(body, "host1") {
			t.Errorf("alice GET %s: %d, host shown: %v", path, code, strings.Contains(body, "host1"))
		}
		if code, _, body := root.get(path); code != http.StatusOK || !strings.Contains(body, "host1") {
			t.Errorf("admin GET %s: %d, host shown: %v", path, code, strings.Contains(body, "host1"))
		}
	}
	if code, _, _ := bob.get("/ui/ports/" + portID); code != http.StatusNotFound {
		t.Errorf("bob GET alice's port: %d, want 404", code)
	}
	if code, _, _ := bob.get("/ui/trace?port=" + portID + "&direction=ingress&protocol=tcp"); code != http.StatusBadRequest {
		t.Errorf("bob traces alice's port: %d, want 400 (no such port)", code)
	}

	// Signing out forgets the token.
	if code, _, _ := alice.post("/ui/logout", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	if code, _, _ := alice.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("after sign-out GET /ui/: %d, want a redirect to the sign-in", code)
	}
}

// Behind an auth proxy (--auth headers) the console runs as the headers
// the proxy set.
func TestHeadersIdentity(t *testing.T) {
	s := startServerMode(t, "headers", "", nil)
	as := func(project, roles string) *browser {
		b := newBrowser(t, s.URL)
		b.c.Transport = headerTransport{"X-User-Id": "u-" + project, "X-Project-Id": project, "X-Roles": roles}
		return b
	}
	alpha, beta, admin := as("p-alpha", "member"), as("p-beta", "member"), as("p-admin", "admin")
	for _, c := range []struct {
		b    *browser
		name string
	}{{alpha, "alpha-web"}, {beta, "beta-db"}} {
		if code, _, body := c.b.post("/ui/security-groups", url.Values{"name": {c.name}}); code != http.StatusSeeOther {
			t.Fatalf("create %s: %d\n%s", c.name, code, body)
		}
	}
	_, _, body := alpha.get("/ui/")
	if !strings.Contains(body, "alpha-web") || strings.Contains(body, "beta-db") || strings.Contains(body, `id="project-select"`) {
		t.Errorf("p-alpha's member: want alpha-web only, no project selector\n%s", body)
	}
	_, _, body = admin.get("/ui/")
	if !strings.Contains(body, "alpha-web") || !strings.Contains(body, "beta-db") || !strings.Contains(body, `id="project-select"`) {
		t.Errorf("the admin: want both groups and the project selector\n%s", body)
	}
	// Without the proxy's headers the API refuses, and so does the console.
	if code, _, _ := newBrowser(t, s.URL).get("/ui/"); code != http.StatusUnauthorized {
		t.Errorf("no identity headers: %d, want 401", code)
	}
}

// headerTransport adds an auth proxy's headers to every request.
type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestNoauthHasNoSignIn(t *testing.T) {
	s := startServer(t, "", nil)
	b := newBrowser(t, s.URL)
	if code, h, _ := b.get("/ui/login"); code != http.StatusSeeOther || h.Get("Location") != "/ui/" {
		t.Errorf("GET /ui/login under noauth: %d %s, want a redirect to /ui/", code, h.Get("Location"))
	}
	code, _, body := b.get("/ui/")
	if code != http.StatusOK || !strings.Contains(body, "admin (noauth)") || !strings.Contains(body, `id="project-select"`) {
		t.Errorf("GET /ui/ under noauth: %d, want the admin with a project selector\n%s", code, body)
	}
}

var ruleRow = regexp.MustCompile(`(?s)<tr>\s*<td>(Ingress|Egress)</td>\s*<td>(IPv[46])</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>`)

// The Add Rule form creates rules as Horizon's does; mistakes come back
// with the form as typed.
func TestAddRuleForm(t *testing.T) {
	s := startServer(t, "", nil)
	gid, _, _ := fixture(t, s.URL, "web", "vm1", "host1")
	b := newBrowser(t, s.URL)
	for _, c := range []struct {
		form url.Values
		want string // the rule's row: direction, ether type, protocol, port range, remote
	}{
		{url.Values{"rule": {"ssh"}, "remote": {"cidr"}, "cidr": {"10.1.0.0/16"}}, "Ingress IPv4 TCP 22 10.1.0.0/16"},
		{url.Values{"rule": {"tcp"}, "direction": {"egress"}, "port_or_range": {"range"}, "from_port": {"8000"}, "to_port": {"8080"}, "remote": {"cidr"}, "cidr": {"::/0"}}, "Egress IPv6 TCP 8000 - 8080 ::/0"},
		{url.Values{"rule": {"custom"}, "ip_protocol": {"4"}, "remote": {"cidr"}, "cidr": {"192.0.2.0/24"}}, "Ingress IPv4 4 (IPIP) Any 192.0.2.0/24"},
		{url.Values{"rule": {"icmp"}, "icmp_type": {"8"}, "icmp_code": {"0"}, "remote": {"cidr"}, "cidr": {"2001:db8::/64"}}, "Ingress IPv6 IPV6-ICMP type 8, code 0 2001:db8::/64"},
		{url.Values{"rule": {"all_udp"}, "remote": {"cidr"}, "cidr": {"0.0.0.0/0"}}, "Ingress IPv4 UDP Any 0.0.0.0/0"}, // the API stores the full range as any, as Neutron does
		{url.Values{"rule": {"all_icmp"}, "remote": {"sg"}, "security_group": {gid}, "ethertype": {"IPv4"}}, "Ingress IPv4 ICMP Any -"},
	} {
		code, _, body := b.post("/ui/security-groups/"+gid+"/rules", c.form)
		if code != http.StatusSeeOther {
			t.Fatalf("add %v: %d\n%s", c.form, code, body)
		}
		_, _, page := b.get("/ui/security-groups/" + gid)
		found := false
		for _, m := range ruleRow.FindAllStringSubmatch(page, -1) {
			found = found || strings.Join(m[1:], " ") == c.want
		}
		if !found {
			t.Errorf("add %v: no row %q in\n%v", c.form, c.want, ruleRow.FindAllStringSubmatch(page, -1))
		}
	}
	for _, c := range []struct {
		form url.Values
		code int
		msg  string
	}{
		{url.Values{"rule": {"custom"}, "ip_protocol": {"256"}}, 400, "from 0 to 255"},
		{url.Values{"rule": {"tcp"}, "port_or_range": {"range"}, "from_port": {"90"}, "to_port": {"80"}}, 400, "greater than or equal"},
		{url.Values{"rule": {"tcp"}, "port": {"70000"}}, 400, "from 1 to 65535"},
		{url.Values{"rule": {"ssh"}, "remote": {"cidr"}, "cidr": {"10.0.0.300/8"}}, 400, "not an address prefix"},
		{url.Values{"rule": {"nope"}}, 400, "Choose a rule"},
		// The API's own refusal: the rule exists already.
		{url.Values{"rule": {"ssh"}, "remote": {"cidr"}, "cidr": {"10.1.0.0/16"}}, 409, "already exists"},
	} {
		code, _, body := b.post("/ui/security-groups/"+gid+"/rules", c.form)
		if code != c.code || !strings.Contains(body, c.msg) || !strings.Contains(body, `id="add-rule"`) {
			t.Errorf("add %v: %d, want %d with %q and the form\n%s", c.form, code, c.code, c.msg, body)
		}
	}
	// Delete asks first, then deletes.
	var g struct {
		Group struct {
			Rules []struct{ ID string } `json:"security_group_rules"`
		} `json:"security_group"`
	}
	apiDo(t, s.URL, http.MethodGet, "security-groups/"+gid, "", "", &g)
	n := len(g.Group.Rules)
	rid := g.Group.Rules[0].ID
	code, _, body := b.get("/ui/security-groups/" + gid + "/rules/" + rid + "/delete")
	if code != http.StatusOK || !strings.Contains(body, "This cannot be undone") {
		t.Fatalf("the delete confirmation: %d\n%s", code, body)
	}
	if code, _, _ := b.post("/ui/security-groups/"+gid+"/rules/"+rid+"/delete", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("delete rule: %d", code)
	}
	apiDo(t, s.URL, http.MethodGet, "security-groups/"+gid, "", "", &g)
	if len(g.Group.Rules) != n-1 {
		t.Errorf("%d rules after the delete, want %d", len(g.Group.Rules), n-1)
	}
}

func TestGroupListCounts(t *testing.T) {
	s := startServer(t, "", nil)
	gid, _, _ := fixture(t, s.URL, "counted", "vm1", "host1")
	b := newBrowser(t, s.URL)
	_, _, body := b.get("/ui/")
	row := regexp.MustCompile(`(?s)<a href="/ui/security-groups/` + gid + `">counted</a>.*?<td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>`).FindStringSubmatch(body)
	if row == nil || row[1] != "2" || row[2] != "1" {
		t.Errorf("counted's row: %v, want 2 rules (the default egress ones) and 1 port\n%s", row, body)
	}
	// Create and delete a group through the console.
	code, h, _ := b.post("/ui/security-groups", url.Values{"name": {"tmp"}, "description": {"short-lived"}})
	if code != http.StatusSeeOther {
		t.Fatalf("create: %d", code)
	}
	id := strings.TrimPrefix(strings.SplitN(h.Get("Location"), "?", 2)[0], "/ui/security-groups/")
	if code, _, body := b.get("/ui/security-groups/" + id + "/delete"); code != http.StatusOK || !strings.Contains(body, "tmp") {
		t.Fatalf("delete confirmation: %d", code)
	}
	if code, h, _ := b.post("/ui/security-groups/"+id+"/delete", url.Values{}); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/ui/?notice=") {
		t.Fatalf("delete: %d %s", code, h.Get("Location"))
	}
	if code, _, _ := b.get("/ui/security-groups/" + id); code != http.StatusNotFound {
		t.Errorf("the deleted group: %d, want 404", code)
	}
}

var hopState = regexp.MustCompile(`class="hop hop-(\w+)( firewall)?" data-hop="([\w-]+)"`)

func hopsOf(body string) string {
	var out []string
	for _, m := range hopState.FindAllStringSubmatch(body, -1) {
		out = append(out, m[3]+":"+m[1])
	}
	return strings.Join(out, " ")
}

// The trace shows where the packet stops and allows it with one click.
func TestTraceAndAllow(t *testing.T) {
	s := startServer(t, "", nil)
	gid, pid, ip := fixture(t, s.URL, "web", "vm1", "host1")
	b := newBrowser(t, s.URL)
	q := url.Values{"port": {pid}, "direction": {"ingress"}, "protocol": {"tcp"}, "src": {"198.51.100.7"}, "dport": {"443"}}
	code, _, body := b.get("/ui/trace?" + q.Encode())
	if code != http.StatusOK {
		t.Fatalf("trace: %d\n%s", code, body)
	}
	if got, want := hopsOf(body), "physical:pass br-int:pass qvo:pass qvb:pass qbr:stop tap:unreached VM:unreached"; got != want {
		t.Errorf("hops %q, want %q", got, want)
	}
	if !strings.Contains(body, "Stopped: DROP") || !strings.Contains(body, "default drop") || !strings.Contains(body, `id="allow"`) {
		t.Fatalf("the trace shows no drop with an allow form\n%s", body)
	}
	if !strings.Contains(body, ip) {
		t.Errorf("the trace does not name the port's address %s", ip)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="(\w+)" value="([^"]*)">`).FindAllStringSubmatch(body[strings.Index(body, `id="allow"`):], -1) {
		form.Set(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
	}
	if form.Get("security_group_id") != gid || form.Get("protocol") != "tcp" || form.Get("port_range_min") != "443" || form.Get("remote_ip_prefix") != "198.51.100.7/32" {
		t.Fatalf("the allow form: %v", form)
	}
	code, h, body := b.post("/ui/trace/allow", form)
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/ui/trace?") {
		t.Fatalf("allow: %d %s\n%s", code, h.Get("Location"), body)
	}
	_, _, body = b.get(h.Get("Location"))
	if got, want := hopsOf(body), "physical:pass br-int:pass qvo:pass qvb:pass qbr:pass tap:pass VM:pass"; got != want {
		t.Errorf("after allow: hops %q, want %q", got, want)
	}
	if !strings.Contains(body, "Passes: ACCEPT") || !strings.Contains(body, `href="/ui/security-groups/`+gid+`">web</a>`) {
		t.Errorf("after allow: no ACCEPT by a rule of group web\n%s", body)
	}
	// Egress runs the other way.
	_, _, body = b.get("/ui/trace?" + url.Values{"port": {pid}, "direction": {"egress"}, "protocol": {"udp"}, "dst": {"192.0.2.1"}, "dport": {"53"}}.Encode())
	if got, want := hopsOf(body), "VM:pass tap:pass qbr:pass qvb:pass qvo:pass br-int:pass physical:pass"; got != want {
		t.Errorf("egress hops %q, want %q", got, want)
	}
}

func TestTraceBadInput(t *testing.T) {
	s := startServer(t, "", nil)
	_, pid, _ := fixture(t, s.URL, "web", "vm1", "host1")
	_, unbound, _ := fixture(t, s.URL, "other", "vm2", "")
	b := newBrowser(t, s.URL)
	for _, c := range []struct {
		q    url.Values
		code int
		msg  string
	}{
		{url.Values{"port": {pid}, "direction": {"ingress"}, "protocol": {"bogus"}}, 400, "protocol"},
		{url.Values{"port": {pid}, "direction": {"sideways"}, "protocol": {"tcp"}}, 400, "direction"},
		{url.Values{"port": {unbound}, "direction": {"ingress"}, "protocol": {"tcp"}}, 400, "not bound to a host"},
		{url.Values{"port": {"no-such-port"}, "direction": {"ingress"}, "protocol": {"tcp"}}, 400, "could not be found"},
		{url.Values{"port": {pid}, "direction": {"ingress"}, "protocol": {"tcp"}}, 400, "give the source address"},
	} {
		code, _, body := b.get("/ui/trace?" + c.q.Encode())
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("trace %v: %d, want %d with %q\n%s", c.q, code, c.code, c.msg, body)
		}
	}
	if code, _, _ := b.get("/ui/security-groups/no-such-group"); code != http.StatusNotFound {
		t.Errorf("unknown group: %d, want 404", code)
	}
	if code, _, _ := b.get("/ui/nowhere"); code != http.StatusNotFound {
		t.Errorf("unknown page: %d, want 404", code)
	}
}

// A port's page shows its compiled rules and, when the API has the
// endpoint, its log events.
func TestPortPage(t *testing.T) {
	s := startServer(t, "", nil)
	_, pid, _ := fixture(t, s.URL, "web", "vm1", "host1")
	b := newBrowser(t, s.URL)
	code, _, body := b.get("/ui/ports/" + pid)
	if code != http.StatusOK {
		t.Fatalf("port page: %d", code)
	}
	for _, want := range []string{"neutron-openvswi-i" + pid[:10], "neutron-openvswi-o" + pid[:10], "Hit counters are not shown", "host1", "No log events for this port yet", `data-refresh="3"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the port page lacks %q", want)
		}
	}
	_, _, body = b.get("/ui/ports")
	if !strings.Contains(body, "vm1") || !strings.Contains(body, "host1") || !strings.Contains(body, ">web</a>") {
		t.Errorf("the ports list lacks vm1 on host1 in web\n%s", body)
	}
}

// TestLogEventsHook: the port page lists the port's events from GET
// /v2.0/moat/log-events (here a stand-in with a hostile field), and a
// server without the endpoint gets a note.
func TestLogEventsHook(t *testing.T) {
	var asked string
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2.0/moat/log-events" {
				asked = r.URL.Query().Get("port_id")
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"log_events": []map[string]any{
					{"time": "2026-01-01T00:00:00Z", "host": "host1", "port_id": asked, "direction": "ingress", "ethertype": "IPv4",
						"protocol": 6, "src": "10.0.0.9", "src_port": 40000, "dst": "10.0.0.3", "dst_port": 22, "verdict": "DROP",
						"protection": "<default-drop>"},
				}})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	s := startServer(t, "", wrap)
	_, pid, _ := fixture(t, s.URL, "web", "vm1", "host1")
	b := newBrowser(t, s.URL)
	_, _, body := b.get("/ui/ports/" + pid)
	if asked != pid {
		t.Errorf("log events asked for port %q, want %q", asked, pid)
	}
	for _, want := range []string{`id="events"`, "<th scope=\"col\">decided by</th>", "<td>DROP</td>", "<td>10.0.0.9:40000</td>", "<td>10.0.0.3:22</td>", "&lt;default-drop&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("the port page lacks %q", want)
		}
	}
}

func TestLocalNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/ports": "/ui/ports", "": "/ui/", "https://evil.example/": "/ui/", "//evil.example/ui/": "/ui/",
		"/ui/\\evil": "/ui/", "/v2.0/ports": "/ui/",
	} {
		if got := localNext(in); got != want {
			t.Errorf("localNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// The console's files are served, its directories are not listed.
func TestStaticFilesOnly(t *testing.T) {
	s := startServer(t, "", nil)
	b := newBrowser(t, s.URL)
	for _, c := range []struct {
		path string
		want int
	}{
		{"/ui/static/console.js", http.StatusOK},
		{"/ui/static/console.css", http.StatusOK},
		{"/ui/static/", http.StatusNotFound},
		{"/ui/static/nosuch.js", http.StatusNotFound},
	} {
		path, want := c.path, c.want
		if code, _, body := b.get(path); code != want || want == http.StatusNotFound && strings.Contains(body, "console.js") {
			t.Errorf("GET %s: %d, want %d\n%.200s", path, code, want, body)
		}
	}
}
