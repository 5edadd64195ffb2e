package wiring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/hybrid"
)

// ovsBridge is an Open vSwitch br-int driven through ovs-vsctl.
type ovsBridge struct {
	name     string
	db       string
	exec     dataplane.Exec
	timeout  time.Duration
	datapath string
	log      *slog.Logger
}

func (o *ovsBridge) kind() string { return KindOVS }

// vsctl runs ovs-vsctl with the database and timeout.
func (o *ovsBridge) vsctl(ctx context.Context, args ...string) ([]byte, error) {
	base := []string{fmt.Sprintf("--timeout=%d", int((o.timeout+time.Second-1)/time.Second))}
	if o.db != "" {
		base = append(base, "--db="+o.db)
	}
	return o.exec.Run(ctx, nil, "ovs-vsctl", append(base, args...)...)
}

// ensure checks that ovsdb-server answers (else ErrNoOVS), creates the
// bridge when missing and checks that ovs-vswitchd runs it.
func (o *ovsBridge) ensure(ctx context.Context) error {
	if !lookPath("ovs-vsctl") {
		return fmt.Errorf("%w: ovs-vsctl is not installed (apt install openvswitch-switch)", ErrNoOVS)
	}
	// --no-wait: only ovsdb-server has to answer.
	_, err := o.vsctl(ctx, "--no-wait", "br-exists", o.name)
	exists := err == nil
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			db := o.db
			if db == "" {
				db = "ovs-vsctl's default database"
			}
			return fmt.Errorf("%w: ovsdb-server does not answer at %s (is openvswitch-switch running?): %v", ErrNoOVS, db, err)
		}
	}
	if !exists {
		dp := o.datapath
		if dp == "" {
			dp = "system"
		}
		// No controller and fail_mode standalone: br-int is a learning
		// switch whose access ports (tag=N) isolate the networks.
		if _, err := o.vsctl(ctx, "--may-exist", "add-br", o.name, "--",
			"set", "Bridge", o.name, "datapath_type="+dp, "fail_mode=standalone"); err != nil {
			return fmt.Errorf("create OVS bridge %s: %w", o.name, err)
		}
		o.log.Info("created OVS integration bridge", "bridge", o.name, "datapath_type", dp)
	} else if o.datapath != "" {
		out, err := o.vsctl(ctx, "get", "Bridge", o.name, "datapath_type")
		if err != nil {
			return fmt.Errorf("read datapath_type of %s: %w", o.name, err)
		}
		have := strings.Trim(strings.TrimSpace(string(out)), `"`)
		if have == "" {
			have = "system"
		}
		if have != o.datapath {
			o.log.Warn("existing OVS integration bridge keeps its datapath type", "bridge", o.name, "datapath_type", have, "configured", o.datapath)
		}
	}
	if err := o.checkInterface(ctx, o.name); err != nil {
		hint := ""
		if o.datapath == "" || o.datapath == "system" {
			hint = " (the kernel datapath needs the openvswitch module; without it use datapath type netdev)"
		}
		return fmt.Errorf("OVS bridge %s does not work%s: %w", o.name, hint, err)
	}
	return nil
}

// checkInterface reads an Interface's error and ofport: ovs-vsctl exits 0
// even when ovs-vswitchd could not set the interface up. ofport stays
// empty while ovs-vswitchd has not (or could not) open the bridge, so an
// empty one is polled briefly.
func (o *ovsBridge) checkInterface(ctx context.Context, name string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err := o.vsctl(ctx, "get", "Interface", name, "error", "ofport")
		if err != nil {
			return fmt.Errorf("read state of OVS interface %s: %w", name, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 2 {
			return fmt.Errorf("read state of OVS interface %s: unexpected ovs-vsctl output %q", name, out)
		}
		errCol, ofport := strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
		if errCol != "[]" && errCol != `""` {
			return fmt.Errorf("OVS interface %s: %s (see ovs-vswitchd's log)", name, unquote(errCol))
		}
		if n, err := strconv.Atoi(ofport); err == nil {
			if n < 0 {
				return fmt.Errorf("OVS interface %s: ofport %d: ovs-vswitchd could not open it (see its log)", name, n)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("OVS interface %s has no OpenFlow port: ovs-vswitchd did not set it up (is ovs-vswitchd running? see its log)", name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (o *ovsBridge) addPort(ctx context.Context, qvo string, p Port) error {
	args := []string{
		"--", "--may-exist", "add-port", o.name, qvo,
		"--", "set", "Port", qvo, "tag=" + strconv.Itoa(p.Tag),
	}
	if p.NetworkID != "" {
		// Where Neutron's OVS agent keeps the network of a port.
		args = append(args, "other_config:net_uuid="+strconv.Quote(p.NetworkID))
	}
	args = append(args,
		"--", "set", "Interface", qvo,
		"external_ids:iface-id="+strconv.Quote(p.ID),
		"external_ids:attached-mac="+strconv.Quote(strings.ToLower(p.MAC)),
		"external_ids:iface-status=active")
	if _, err := o.vsctl(ctx, args...); err != nil {
		return fmt.Errorf("add %s to OVS bridge %s: %w", qvo, o.name, err)
	}
	if err := o.checkInterface(ctx, qvo); err != nil {
		return err
	}
	return nil
}

func (o *ovsBridge) delPort(ctx context.Context, qvo string) error {
	if _, err := o.vsctl(ctx, "--if-exists", "del-port", qvo); err != nil {
		return fmt.Errorf("remove %s from OVS: %w", qvo, err)
	}
	return nil
}

// ports lists br-int's qvo ports with their tags and external_ids.
func (o *ovsBridge) ports(ctx context.Context) (map[string]bridgePort, error) {
	out, err := o.vsctl(ctx, "--format=json",
		"--columns=ports", "list", "Bridge", o.name,
		"--", "--columns=_uuid,name,tag,other_config", "list", "Port",
		"--", "--columns=name,external_ids", "list", "Interface")
	if err != nil {
		return nil, fmt.Errorf("list OVS ports of %s: %w", o.name, err)
	}
	tables, err := decodeTables(out)
	if err != nil || len(tables) != 3 {
		return nil, fmt.Errorf("list OVS ports of %s: cannot parse ovs-vsctl output (%v): %.200q", o.name, err, out)
	}
	onBridge := map[string]bool{}
	for _, row := range tables[0] {
		for _, u := range row["ports"].set() {
			onBridge[u.uuid()] = true
		}
	}
	ifaces := map[string]map[string]string{}
	for _, row := range tables[2] {
		ifaces[row["name"].str()] = row["external_ids"].smap()
	}
	res := map[string]bridgePort{}
	for _, row := range tables[1] {
		name := row["name"].str()
		devID, ok := strings.CutPrefix(name, hybrid.OVSVethPrefix)
		if !ok || !onBridge[row["_uuid"].uuid()] || hybrid.CheckDeviceID(devID) != nil {
			continue
		}
		bp := bridgePort{networkID: row["other_config"].smap()["net_uuid"]}
		if tags := row["tag"].set(); len(tags) == 1 {
			bp.tag = tags[0].int()
		}
		ext := ifaces[name]
		bp.portID, bp.mac = ext["iface-id"], ext["attached-mac"]
		res[devID] = bp
	}
	return res, nil
}

// ovsdb values in ovs-vsctl's --format=json output: an atom (string,
// number, bool), ["uuid", U], ["set", [...]] or ["map", [[k, v]...]].
type datum struct{ v any }

func (d datum) str() string {
	s, _ := d.v.(string)
	return s
}

func (d datum) int() int {
	switch x := d.v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return int(n)
	}
	return 0
}

func (d datum) uuid() string {
	if a, ok := d.v.([]any); ok && len(a) == 2 && a[0] == "uuid" {
		s, _ := a[1].(string)
		return s
	}
	return ""
}

// set returns a set's members; a single atom is a set of one.
func (d datum) set() []datum {
	if a, ok := d.v.([]any); ok && len(a) == 2 {
		if a[0] == "set" {
			items, _ := a[1].([]any)
			out := make([]datum, len(items))
			for i, it := range items {
				out[i] = datum{it}
			}
			return out
		}
		if a[0] == "map" {
			return nil
		}
	}
	if d.v == nil {
		return nil
	}
	return []datum{d}
}

func (d datum) smap() map[string]string {
	out := map[string]string{}
	a, ok := d.v.([]any)
	if !ok || len(a) != 2 || a[0] != "map" {
		return out
	}
	pairs, _ := a[1].([]any)
	for _, p := range pairs {
		kv, ok := p.([]any)
		if !ok || len(kv) != 2 {
			continue
		}
		k, _ := kv[0].(string)
		v, _ := kv[1].(string)
		out[k] = v
	}
	return out
}

// decodeTables parses consecutive {"headings": [...], "data": [[...]...]}
// documents into rows keyed by heading.
func decodeTables(out []byte) ([][]map[string]datum, error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var tables [][]map[string]datum
	for dec.More() {
		var t struct {
			Headings []string `json:"headings"`
			Data     [][]any  `json:"data"`
		}
		if err := dec.Decode(&t); err != nil {
			return nil, err
		}
		rows := make([]map[string]datum, 0, len(t.Data))
		for _, r := range t.Data {
			if len(r) != len(t.Headings) {
				return nil, fmt.Errorf("row of %d values under %d headings", len(r), len(t.Headings))
			}
			row := make(map[string]datum, len(r))
			for i, h := range t.Headings {
				row[h] = datum{r[i]}
			}
			rows = append(rows, row)
		}
		tables = append(tables, rows)
	}
	return tables, nil
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}
