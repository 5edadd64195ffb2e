package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// loginData is the sign-in form.
type loginData struct {
	User, Project, Domain, Next string
}

// login shows the sign-in form and, on POST, gets a token from Keystone
// for user, password and project, and keeps it in the session cookie.
// Without Keystone there is nothing to sign in to.
func (c *Console) login(w http.ResponseWriter, r *http.Request, csrf string) {
	if c.auth != "keystone" {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
		return
	}
	who := &caller{CSRF: csrf}
	d := loginData{Domain: "Default", Next: localNext(r.FormValue("next"))}
	p := &page{Title: "Sign In", Who: who, Data: &d, Keystone: true}
	if r.Method != http.MethodPost {
		c.render(w, http.StatusOK, "login", p)
		return
	}
	d.User = strings.TrimSpace(r.PostForm.Get("username"))
	d.Project = strings.TrimSpace(r.PostForm.Get("project"))
	if dom := strings.TrimSpace(r.PostForm.Get("domain")); dom != "" {
		d.Domain = dom
	}
	password := r.PostForm.Get("password")
	if d.User == "" || password == "" || d.Project == "" {
		p.Error = "User name, password and project are required."
		c.render(w, http.StatusBadRequest, "login", p)
		return
	}
	s, status, err := c.issueToken(r, d.User, password, d.Project, d.Domain)
	if err != nil {
		c.log.Warn("console: sign-in failed", "user", d.User, "project", d.Project, "err", err)
		p.Error = err.Error()
		c.render(w, status, "login", p)
		return
	}
	raw, _ := json.Marshal(s)
	c.setCookie(w, r, sessionCookie, base64.RawURLEncoding.EncodeToString(raw), s.Expires)
	c.clearCookie(w, r, projectCookie)
	c.log.Info("console: signed in", "user", d.User, "project", d.Project)
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

// issueToken asks Keystone for a project-scoped token (POST
// /v3/auth/tokens, password method). The status is the page's on failure.
func (c *Console) issueToken(r *http.Request, user, password, project, domain string) (*session, int, error) {
	dom := map[string]string{"name": domain}
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"},
			"password": map[string]any{"user": map[string]any{"name": user, "domain": dom, "password": password}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": dom}},
	}}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, c.keystone+"/auth/tokens", bytes.NewReader(b))
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, http.StatusServiceUnavailable, fmt.Errorf("Keystone is unreachable: %v", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, http.StatusUnauthorized, fmt.Errorf("Invalid credentials: Keystone refused the user, password or project.")
	case resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK:
		return nil, http.StatusBadGateway, fmt.Errorf("Keystone answered %s.", resp.Status)
	}
	var tok struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			User      struct {
				Name string `json:"name"`
			} `json:"user"`
			Project *struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"project"`
			Roles []struct {
				Name string `json:"name"`
			} `json:"roles"`
		} `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return nil, http.StatusBadGateway, fmt.Errorf("Keystone's token is unreadable: %v", err)
	}
	s := &session{Token: resp.Header.Get("X-Subject-Token"), User: tok.Token.User.Name}
	if s.Token == "" {
		return nil, http.StatusBadGateway, fmt.Errorf("Keystone answered without a token")
	}
	if s.Expires, err = time.Parse(time.RFC3339Nano, tok.Token.ExpiresAt); err != nil {
		return nil, http.StatusBadGateway, fmt.Errorf("Keystone's token has no expiry: %v", err)
	}
	if tok.Token.Project != nil {
		s.Project, s.ProjectID = tok.Token.Project.Name, tok.Token.Project.ID
	}
	for _, role := range tok.Token.Roles {
		s.Admin = s.Admin || strings.EqualFold(role.Name, "admin")
	}
	return s, 0, nil
}
