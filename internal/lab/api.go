package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client speaks the Neutron API of a lab's moat from inside its host
// namespace (the API listens on 127.0.0.1 there). noauth: no token.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the API at base (e.g. APIURL) whose
// connections are made inside network namespace hostNS.
func NewClient(hostNS, base string) *Client {
	tr := &http.Transport{DialContext: dialIn(hostNS), DisableKeepAlives: false, MaxIdleConns: 4}
	return &Client{base: base, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Close drops the idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Do sends body (JSON, if not nil) and decodes a 2xx answer, if it has a
// body, into out (if not nil). Other answers are errors with the status and
// the body.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

type apiNetwork struct {
	ID  string `json:"id"`
	MTU int    `json:"mtu"`
}

type apiSubnet struct {
	ID        string  `json:"id"`
	CIDR      string  `json:"cidr"`
	GatewayIP *string `json:"gateway_ip"`
}

type apiGroup struct {
	ID string `json:"id"`
}

type apiPort struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	MAC      string `json:"mac_address"`
	Status   string `json:"status"`
	FixedIPs []struct {
		SubnetID  string `json:"subnet_id"`
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
}

func (c *Client) createNetwork(ctx context.Context, name string) (apiNetwork, error) {
	return c.createNetworkWith(ctx, map[string]any{"name": name})
}

func (c *Client) createNetworkWith(ctx context.Context, network map[string]any) (apiNetwork, error) {
	var r struct{ Network apiNetwork }
	err := c.Do(ctx, "POST", "/v2.0/networks", map[string]any{"network": network}, &r)
	return r.Network, err
}

func (c *Client) createSubnet(ctx context.Context, name, networkID, cidr string) (apiSubnet, error) {
	var r struct{ Subnet apiSubnet }
	err := c.Do(ctx, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"name": name, "network_id": networkID, "cidr": cidr, "ip_version": 4}}, &r)
	return r.Subnet, err
}

func (c *Client) createGroup(ctx context.Context, name, description string) (apiGroup, error) {
	var r struct {
		Group apiGroup `json:"security_group"`
	}
	err := c.Do(ctx, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{
		"name": name, "description": description}}, &r)
	return r.Group, err
}

func (c *Client) createPort(ctx context.Context, port map[string]any) (apiPort, error) {
	var r struct{ Port apiPort }
	err := c.Do(ctx, "POST", "/v2.0/ports", map[string]any{"port": port}, &r)
	return r.Port, err
}

func (c *Client) port(ctx context.Context, id string) (apiPort, error) {
	var r struct{ Port apiPort }
	err := c.Do(ctx, "GET", "/v2.0/ports/"+id, nil, &r)
	return r.Port, err
}
