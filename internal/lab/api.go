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

// client speaks the Neutron API of the lab's moat, from inside its host
// namespace (the API listens on 127.0.0.1 there). noauth: no token.
type client struct {
	base string
	http *http.Client
}

func newClient(hostNS, base string) *client {
	tr := &http.Transport{DialContext: dialIn(hostNS), DisableKeepAlives: false, MaxIdleConns: 4}
	return &client{base: base, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// do sends body (JSON) and decodes a 2xx answer into out.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
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
	if out != nil {
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

func (c *client) createNetwork(ctx context.Context, name string) (apiNetwork, error) {
	var r struct{ Network apiNetwork }
	err := c.do(ctx, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": name}}, &r)
	return r.Network, err
}

func (c *client) createSubnet(ctx context.Context, name, networkID, cidr string) (apiSubnet, error) {
	var r struct{ Subnet apiSubnet }
	err := c.do(ctx, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"name": name, "network_id": networkID, "cidr": cidr, "ip_version": 4}}, &r)
	return r.Subnet, err
}

func (c *client) createGroup(ctx context.Context, name, description string) (apiGroup, error) {
	var r struct {
		Group apiGroup `json:"security_group"`
	}
	err := c.do(ctx, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{
		"name": name, "description": description}}, &r)
	return r.Group, err
}

func (c *client) createPort(ctx context.Context, port map[string]any) (apiPort, error) {
	var r struct{ Port apiPort }
	err := c.do(ctx, "POST", "/v2.0/ports", map[string]any{"port": port}, &r)
	return r.Port, err
}

func (c *client) port(ctx context.Context, id string) (apiPort, error) {
	var r struct{ Port apiPort }
	err := c.do(ctx, "GET", "/v2.0/ports/"+id, nil, &r)
	return r.Port, err
}
