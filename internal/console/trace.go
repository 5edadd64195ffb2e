package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/hybrid"
	"github.com/moat-sg/moat/internal/trace"
)

// traceForm is the packet the trace page asks about; its fields are the
// query string, so that a trace is a URL to bookmark or share.
type traceForm struct {
	Port, Direction, Hook, Protocol, Src, Dst, SrcPort, DstPort, ICMPType, ICMPCode string
}

func readTraceForm(q url.Values) traceForm {
	g := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	f := traceForm{Port: g("port"), Direction: g("direction"), Hook: g("hook"), Protocol: g("protocol"), Src: g("src"), Dst: g("dst"),
		SrcPort: g("sport"), DstPort: g("dport"), ICMPType: g("icmp_type"), ICMPCode: g("icmp_code")}
	if f.Direction == "" {
		f.Direction = "ingress"
	}
	if f.Hook == "" {
		f.Hook = "forward"
	}
	if f.Protocol == "" {
		f.Protocol = "tcp"
	}
	return f
}

func (f traceForm) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"port": f.Port, "direction": f.Direction, "hook": f.Hook, "protocol": f.Protocol, "src": f.Src,
		"dst": f.Dst, "sport": f.SrcPort, "dport": f.DstPort, "icmp_type": f.ICMPType, "icmp_code": f.ICMPCode} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// hop is one device on the packet's way.
type hop struct {
	Name, Device, Role string
	// State is pass, stop (the packet ends here), unknown, or unreached.
	State string
	// Firewall marks the hop where the rules are applied.
	Firewall bool
}

// traceData is the trace page.
type traceData struct {
	Form  traceForm
	Ports []port
	// Result is the trace, nil before one ran; Error why it could not.
	Result *trace.Result
	Error  string
	Hops   []hop
	Host   string
	// Stopped says where the packet stopped ("" when it passed).
	Stopped string
	// Groups are the deciding rule's groups (id → name).
	Names map[string]string
	// Allow is the suggested rule, in Horizon's columns, and its body.
	Allow     *rule
	AllowForm url.Values
}

func (c *Console) tracePage(w http.ResponseWriter, r *http.Request, who *caller) {
	q := r.URL.Query()
	d := traceData{Form: readTraceForm(q)}
	ports, err := c.listPorts(r.Context(), who, projectQuery(who))
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	d.Ports = ports
	gs, err := c.listGroups(r.Context(), who)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	d.Names = groupNames(gs)
	status := http.StatusOK
	if d.Form.Port != "" && q.Has("direction") {
		if err := c.runTrace(r, who, &d); err != nil {
			d.Error = err.Error()
			status = http.StatusBadRequest
		}
	}
	p := c.newPage(r, who, "Trace a Packet", "trace")
	p.Data = d
	c.render(w, status, "trace", p)
}

// runTrace traces the form's packet through the rules of the port's host,
// compiled in memory.
func (c *Console) runTrace(r *http.Request, who *caller, d *traceData) error {
	p, err := c.getPort(r.Context(), who, d.Form.Port)
	if err != nil {
		return err
	}
	h, host, err := c.compileHost(r.Context(), p.ID)
	if who.Admin {
		d.Host = host // for admins only, as binding:host_id in the API
	}
	if err != nil {
		return err
	}
	tq := trace.Query{Port: p.ID, Direction: trace.Direction(d.Form.Direction), Hook: trace.Hook(d.Form.Hook), Protocol: d.Form.Protocol,
		Src: d.Form.Src, Dst: d.Form.Dst, SrcPort: d.Form.SrcPort, DstPort: d.Form.DstPort, ICMPType: d.Form.ICMPType, ICMPCode: d.Form.ICMPCode}
	res, err := h.Trace(tq)
	if err != nil {
		// The simulator speaks of moat trace's flags; say the form's fields.
		return errors.New(flagNames.Replace(err.Error()))
	}
	d.Result = res
	d.Hops, d.Stopped = hops(p.ID, res)
	if s := res.Rule; s != nil && s.GroupID != "" {
		d.Allow, d.AllowForm = suggestion(s, d.Form)
	}
	return nil
}

// flagNames are moat trace's flags as the trace form names them.
var flagNames = strings.NewReplacer("--src-mac", "the source MAC", "--src", "the source address", "--dst", "the destination address",
	"--sport", "the source port", "--dport", "the destination port", "--icmp-type", "the ICMP type", "--icmp-code", "the ICMP code",
	"--protocol", "the protocol", "--direction", "the direction", "--hook", "the destination (towards)")

// hops draws the hybrid path of the port (VM, tap, qbr, qvb, qvo,
// br-int, the physical side) in the packet's order and marks where it
// stops: the rules are applied on the port's bridge qbr, between tap and
// qvb.
func hops(portID string, res *trace.Result) ([]hop, string) {
	dev := hybrid.PortDevices(portID)
	vm := hop{Name: "VM", Device: "eth0", Role: "the instance's interface"}
	tap := hop{Name: "tap", Device: dev.Tap, Role: "the VM's end, on the port's bridge"}
	qbr := hop{Name: "qbr", Device: dev.Bridge, Role: "the port's Linux bridge: security group rules (iptables) apply here", Firewall: true}
	qvb := hop{Name: "qvb", Device: dev.BridgeVeth, Role: "the bridge's end of the veth pair"}
	qvo := hop{Name: "qvo", Device: dev.OVSVeth, Role: "the veth's end on br-int"}
	brint := hop{Name: "br-int", Device: "br-int", Role: "the integration bridge (local VLAN tag)"}
	phys := hop{Name: "physical", Device: "br-eth / br-tun", Role: "the provider network or tunnel, to other hosts"}
	var path []hop
	switch {
	case res.Direction == trace.Egress && res.Hook == trace.HookInput:
		path = []hop{vm, tap, qbr, {Name: "host", Device: "INPUT", Role: "this host itself"}}
	case res.Direction == trace.Egress:
		path = []hop{vm, tap, qbr, qvb, qvo, brint, phys}
	default:
		path = []hop{phys, brint, qvo, qvb, qbr, tap, vm}
	}
	state := "pass"
	stopped := ""
	for i := range path {
		path[i].State = state
		if path[i].Firewall {
			switch res.Verdict {
			case trace.VerdictAccept:
			case trace.VerdictUnknown:
				path[i].State, state = "unknown", "unreached"
				stopped = "qbr " + dev.Bridge + ": the verdict is unknown"
			default:
				path[i].State, state = "stop", "unreached"
				stopped = fmt.Sprintf("qbr %s: %s", dev.Bridge, res.Verdict)
				if d := res.DecidedBy; d != nil {
					stopped += fmt.Sprintf(" by %s %s", d.Table, d.Chain)
					if d.RuleNumber > 0 {
						stopped += " #" + strconv.Itoa(d.RuleNumber)
					}
				}
			}
		}
	}
	return path, stopped
}

// suggestion turns the trace's suggested rule into a rule to preview and
// the hidden fields of the form that creates it.
func suggestion(s *trace.SuggestedRule, f traceForm) (*rule, url.Values) {
	ru := &rule{GroupID: s.GroupID, Direction: string(s.Direction), EtherType: s.EtherType}
	v := url.Values{"security_group_id": {s.GroupID}, "direction": {string(s.Direction)}, "ethertype": {s.EtherType},
		"remote_ip_prefix": {s.RemoteIPPrefix}, "next": {Prefix + "/trace?" + f.query().Encode()}}
	ru.RemoteIPPrefix = &s.RemoteIPPrefix
	if s.Protocol != "" {
		ru.Protocol = &s.Protocol
		v.Set("protocol", s.Protocol)
	}
	lo, hi := s.PortMin, s.PortMax
	if s.ICMPType >= 0 {
		lo, hi = s.ICMPType, s.ICMPCode
	}
	if lo >= 0 {
		ru.PortMin = &lo
		v.Set("port_range_min", strconv.Itoa(lo))
	}
	if hi >= 0 {
		ru.PortMax = &hi
		v.Set("port_range_max", strconv.Itoa(hi))
	}
	return ru, v
}

// allow creates the rule a trace suggested and goes back to the trace.
func (c *Console) allow(w http.ResponseWriter, r *http.Request, who *caller) {
	f := r.PostForm
	body := map[string]any{"security_group_id": f.Get("security_group_id"), "direction": f.Get("direction"),
		"ethertype": f.Get("ethertype"), "remote_ip_prefix": f.Get("remote_ip_prefix"),
		"description": "allowed from moat's trace"}
	if p := f.Get("protocol"); p != "" {
		body["protocol"] = p
	}
	for _, k := range []string{"port_range_min", "port_range_max"} {
		if s := f.Get(k); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				c.fail(w, r, who, badForm("%s %q is not a number.", k, s))
				return
			}
			body[k] = n
		}
	}
	if err := c.call(r.Context(), who, http.MethodPost, "security-group-rules", nil, map[string]any{"security_group_rule": body}, nil); err != nil {
		c.fail(w, r, who, err)
		return
	}
	redirect(w, r, localNext(f.Get("next")), "Added the rule: the trace below runs again with it.")
}
