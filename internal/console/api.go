package console

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// apiError is an error answer of the API, with its status and Neutron's
// message, shown to the user as it is.
type apiError struct {
	Status  int
	Type    string
	Message string
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return http.StatusText(e.Status)
	}
	return e.Message
}

// call sends one request to the API in process as who and decodes the
// answer into out (nil: ignore the body).
func (c *Console) call(ctx context.Context, who *caller, method, path string, query url.Values, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	u := "/v2.0/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+who.host+u, rd)
	if err != nil {
		return err
	}
	req.RequestURI = u
	req.RemoteAddr = who.remote
	for k, v := range who.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}, Code: http.StatusOK}
	c.api.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		e := &apiError{Status: rec.Code}
		var nb struct {
			NeutronError *struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"NeutronError"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &nb) == nil {
			switch {
			case nb.NeutronError != nil:
				e.Type, e.Message = nb.NeutronError.Type, nb.NeutronError.Message
			case nb.Error != nil:
				e.Message = nb.Error.Message
			}
		}
		return e
	}
	if out == nil || rec.Code == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// recorder keeps the API's answer to an in-process call.
type recorder struct {
	header http.Header
	Code   int
	Body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.Code, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.Body.Write(b)
}

// The API's objects, as much of them as the console shows.

type group struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	ProjectID   string `json:"project_id"`
	Stateful    bool   `json:"stateful"`
	Rules       []rule `json:"security_group_rules"`
	// Ports is filled by the console: the ports that carry the group.
	Ports []port `json:"-"`
}

type rule struct {
	ID                   string  `json:"id"`
	GroupID              string  `json:"security_group_id"`
	Direction            string  `json:"direction"`
	EtherType            string  `json:"ethertype"`
	Protocol             *string `json:"protocol"`
	PortMin              *int    `json:"port_range_min"`
	PortMax              *int    `json:"port_range_max"`
	RemoteIPPrefix       *string `json:"remote_ip_prefix"`
	RemoteGroupID        *string `json:"remote_group_id"`
	RemoteAddressGroupID *string `json:"remote_address_group_id"`
	Description          string  `json:"description"`
}

type fixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

type port struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	NetworkID      string    `json:"network_id"`
	ProjectID      string    `json:"project_id"`
	MAC            string    `json:"mac_address"`
	Status         string    `json:"status"`
	FixedIPs       []fixedIP `json:"fixed_ips"`
	SecurityGroups []string  `json:"security_groups"`
	HostID         string    `json:"binding:host_id"`
	DeviceOwner    string    `json:"device_owner"`
	PortSecurity   *bool     `json:"port_security_enabled"`
}

// projectQuery limits a list to the project an admin chose to view.
func projectQuery(who *caller) url.Values {
	q := url.Values{}
	if who.Admin && who.ViewProject != "" {
		q.Set("project_id", who.ViewProject)
	}
	return q
}

func (c *Console) listGroups(ctx context.Context, who *caller) ([]group, error) {
	var out struct {
		Groups []group `json:"security_groups"`
	}
	if err := c.call(ctx, who, http.MethodGet, "security-groups", projectQuery(who), nil, &out); err != nil {
		return nil, err
	}
	slices.SortFunc(out.Groups, func(a, b group) int { return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID)) })
	return out.Groups, nil
}

func (c *Console) getGroup(ctx context.Context, who *caller, id string) (*group, error) {
	var out struct {
		Group group `json:"security_group"`
	}
	if err := c.call(ctx, who, http.MethodGet, "security-groups/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Group, nil
}

func (c *Console) listPorts(ctx context.Context, who *caller, q url.Values) ([]port, error) {
	var out struct {
		Ports []port `json:"ports"`
	}
	if err := c.call(ctx, who, http.MethodGet, "ports", q, nil, &out); err != nil {
		return nil, err
	}
	slices.SortFunc(out.Ports, func(a, b port) int { return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID)) })
	return out.Ports, nil
}

func (c *Console) getPort(ctx context.Context, who *caller, id string) (*port, error) {
	var out struct {
		Port port `json:"port"`
	}
	if err := c.call(ctx, who, http.MethodGet, "ports/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Port, nil
}

// groupNames maps the ids of the groups the caller sees to their names.
func groupNames(gs []group) map[string]string {
	m := make(map[string]string, len(gs))
	for _, g := range gs {
		m[g.ID] = g.Name
	}
	return m
}
