package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

func init() {
	rootCmd.AddCommand(newTraceCmd())
}

// ruleSource says where trace and explain read the rules from: files, a
// spec compiled by moat, or the kernel of the current network namespace.
type ruleSource struct {
	iptablesSave, ip6tablesSave, ipsetFile string
	input, scenario                        string
	compat                                 bool
	backend                                string
	netns                                  string
	db                                     string
}

func (s *ruleSource) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.iptablesSave, "iptables-save", "", "read IPv4 rules from this iptables-save [-c] output instead of the kernel")
	f.StringVar(&s.ip6tablesSave, "ip6tables-save", "", "read IPv6 rules from this ip6tables-save [-c] output")
	f.StringVar(&s.ipsetFile, "ipset", "", "read ipsets from this ipset save (or ipset list) output")
	f.StringVar(&s.input, "input", "", "trace what moat would install for this spec (the moat render input)")
	f.StringVar(&s.scenario, "scenario", "", "scenario of --input; required when the file holds several")
	f.BoolVar(&s.compat, "neutron-compat", false, "with --input: compile as Neutron 21 would, bugs included (docs/compatibility.md)")
	f.StringVar(&s.backend, "backend", "auto", "live rules: iptables-legacy, iptables-nft, or auto (the one holding Neutron's or moat's chains)")
	f.StringVar(&s.netns, "netns", "", "live rules: read them in this network namespace (ip netns exec NAME ...)")
	f.StringVar(&s.db, "db", "", "moat's database, to name the security group rule behind each rule (default: "+store.DefaultURL+" if it exists)")
}

func (s *ruleSource) fromFiles() bool { return s.iptablesSave != "" || s.ip6tablesSave != "" }

// load returns the host to trace and a note on where its rules came from.
func (s *ruleSource) load(ctx context.Context, stdin io.Reader) (*trace.Host, string, error) {
	switch {
	case s.input != "" && (s.fromFiles() || s.ipsetFile != ""):
		return nil, "", errors.New("--input and --iptables-save/--ip6tables-save/--ipset exclude each other")
	case s.input != "":
		return s.loadSpec(stdin)
	case s.fromFiles():
		return s.loadFiles()
	case s.ipsetFile != "":
		return nil, "", errors.New("--ipset needs --iptables-save or --ip6tables-save")
	}
	return s.loadLive(ctx)
}

func (s *ruleSource) loadSpec(stdin io.Reader) (*trace.Host, string, error) {
	file, err := readSpec(stdin, s.input)
	if err != nil {
		return nil, "", err
	}
	st, name, err := scenarioState(file, s.input, s.scenario, s.compat)
	if err != nil {
		return nil, "", err
	}
	h, err := moatrules.Host(st)
	if err != nil {
		return nil, "", fmt.Errorf("scenario %s: %w", name, err)
	}
	return h, "what moat compiles for scenario " + name + " of " + s.input, nil
}

func (s *ruleSource) loadFiles() (*trace.Host, string, error) {
	h := &trace.Host{}
	read := func(path string, v6 bool) (*trace.Ruleset, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rs, err := trace.ParseSave(f, v6)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return rs, nil
	}
	var err error
	if s.iptablesSave != "" {
		if h.IPv4, err = read(s.iptablesSave, false); err != nil {
			return nil, "", err
		}
	}
	if s.ip6tablesSave != "" {
		if h.IPv6, err = read(s.ip6tablesSave, true); err != nil {
			return nil, "", err
		}
	}
	if s.ipsetFile != "" {
		f, err := os.Open(s.ipsetFile)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		if h.Sets, err = trace.ParseIPSets(f); err != nil {
			return nil, "", fmt.Errorf("%s: %w", s.ipsetFile, err)
		}
	}
	var files []string
	for _, f := range []string{s.iptablesSave, s.ip6tablesSave, s.ipsetFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	return h, "files " + strings.Join(files, ", "), nil
}

// run runs a command, in --netns if given.
func (s *ruleSource) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if s.netns != "" {
		args = append([]string{"netns", "exec", s.netns, name}, args...)
		name = "ip"
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		return nil, fmt.Errorf("%s %s: %v %s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// backend picks the iptables variant to read: the one whose tables hold
// Neutron's or moat's chains. iptables-legacy-save is never run unless
// legacy tables exist, because reading them through the legacy interface
// instantiates them in the namespace (after which iptables-nft warns about
// legacy tables forever).
func (s *ruleSource) pickBackend(ctx context.Context) (iptables.Backend, []byte, error) {
	if s.backend != "auto" && s.backend != "" {
		b, err := iptables.ParseBackend(s.backend)
		return b, nil, err
	}
	nftOut, nftErr := s.run(ctx, iptables.NFT.Command(iptables.IPv4, "save"), "-c")
	if nftErr == nil && bytes.Contains(nftOut, []byte(":neutron-")) {
		return iptables.NFT, nftOut, nil
	}
	names, _ := s.run(ctx, "cat", "/proc/net/ip_tables_names")
	if len(bytes.TrimSpace(names)) > 0 {
		return iptables.Legacy, nil, nil
	}
	if nftErr != nil {
		return "", nil, fmt.Errorf("read the rules: %w (choose a backend with --backend, or give --iptables-save FILE)", nftErr)
	}
	return iptables.NFT, nftOut, nil
}

func (s *ruleSource) loadLive(ctx context.Context) (*trace.Host, string, error) {
	b, v4out, err := s.pickBackend(ctx)
	if err != nil {
		return nil, "", err
	}
	h := &trace.Host{}
	if v4out == nil {
		if v4out, err = s.run(ctx, b.Command(iptables.IPv4, "save"), "-c"); err != nil {
			return nil, "", err
		}
	}
	if !bytes.Contains(v4out, []byte("\n*")) && !bytes.HasPrefix(v4out, []byte("*")) {
		ns := "this network namespace"
		if s.netns != "" {
			ns = "network namespace " + s.netns
		}
		return nil, "", fmt.Errorf("%s shows no iptables tables in %s: run moat in the host's namespace (ip netns exec HOST moat ..., or --netns HOST), or choose the other --backend", b.Command(iptables.IPv4, "save"), ns)
	}
	if h.IPv4, err = trace.ParseSaveString(string(v4out), false); err != nil {
		return nil, "", fmt.Errorf("%s output: %w", b.Command(iptables.IPv4, "save"), err)
	}
	where := "the kernel (" + string(b)
	if s.netns != "" {
		where += ", netns " + s.netns
	}
	where += ")"
	// Without IPv6 rules or ipsets a trace still works for what does not
	// need them; say what is missing.
	if out, err := s.run(ctx, b.Command(iptables.IPv6, "save"), "-c"); err == nil {
		if h.IPv6, err = trace.ParseSaveString(string(out), true); err != nil {
			return nil, "", fmt.Errorf("%s output: %w", b.Command(iptables.IPv6, "save"), err)
		}
	} else {
		where += "; no IPv6 rules: " + err.Error()
	}
	if out, err := s.run(ctx, "ipset", "save"); err == nil {
		if h.Sets, err = trace.ParseIPSets(bytes.NewReader(out)); err != nil {
			return nil, "", fmt.Errorf("ipset save output: %w", err)
		}
	} else {
		where += "; no ipsets: " + err.Error()
	}
	return h, where, nil
}

// packetFlags are the packet's description on the command line.
type packetFlags struct {
	q trace.Query
}

func (p *packetFlags) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.q.Port, "port", "", "port id, or a unique prefix of one")
	f.StringVar(&p.q.Tap, "tap", "", "the port's tap device, instead of --port")
	f.StringVar((*string)(&p.q.Direction), "direction", "", "ingress (to the VM) or egress (from the VM)")
	f.StringVar((*string)(&p.q.Hook), "hook", "forward", "forward (bridged: to or from anywhere but this host) or input (egress to this host itself)")
	f.StringVar(&p.q.Protocol, "protocol", "", "IP protocol: a number, or a name (Neutron's: ipip is 4; or /etc/protocols': ipencap is 4)")
	f.StringVar(&p.q.Src, "src", "", "source address (default for egress: the port's address)")
	f.StringVar(&p.q.Dst, "dst", "", "destination address (default for ingress: the port's address)")
	f.StringVar(&p.q.SrcPort, "sport", "", "source port")
	f.StringVar(&p.q.DstPort, "dport", "", "destination port")
	f.StringVar(&p.q.ICMPType, "icmp-type", "", "ICMP or ICMPv6 type")
	f.StringVar(&p.q.ICMPCode, "icmp-code", "", "ICMP or ICMPv6 code")
	f.StringVar(&p.q.SrcMAC, "src-mac", "", "source MAC (default for egress: the port's MAC)")
	f.StringVar(&p.q.State, "state", "new", "conntrack state: new, established, related, invalid or untracked")
}

func newTraceCmd() *cobra.Command {
	var src ruleSource
	var pf packetFlags
	var asJSON bool
	var packets string
	cmd := &cobra.Command{
		Use:   "trace --port ID --direction ingress|egress --protocol P [--src IP] [--dst IP] ...",
		Short: "Simulate one packet through the host's iptables rules: which rule decides, and which rule to add",
		Long: `trace sends one packet through the raw and filter tables the way netfilter
would on the hybrid path (raw PREROUTING, then filter FORWARD for a bridged
frame, or INPUT with --hook input) and prints every rule it meets with each
match's outcome, the verdict, the rule that decided and what that rule stands
for: a security group rule (with its id when moat compiled the rules), the
default drop, anti-spoofing, the INVALID-state drop, DHCP protection, ...
For a drop by the default rule it prints the openstack command that would
allow the packet.

The rules are read from the kernel of the current network namespace
(iptables-save -c, ip6tables-save -c, ipset save; --netns NAME to read another
one), from files (--iptables-save, --ip6tables-save, --ipset), or compiled by
moat from a spec (--input FILE [--scenario NAME], as moat render).

--packets FILE traces many packets: one JSON object per line with the keys
port, tap, direction, hook, protocol, src, dst, sport, dport, icmp_type,
icmp_code, src_mac, state; it prints one JSON result per line.

A match trace cannot evaluate (an unmodelled module, a missing ipset, a port
the packet lacks) is reported as unknown, never taken as a miss; the verdict
is "unknown" when such a rule could have decided. See docs/trace.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, where, err := src.load(cmd.Context(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			where += src.withProvenance(cmd.Context(), h, pf.q.Port, packets != "")
			if packets != "" {
				return runTraceBatch(cmd.OutOrStdout(), cmd.InOrStdin(), h, packets)
			}
			res, err := h.Trace(pf.q)
			if err != nil {
				return err
			}
			if asJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rules:  %s\n", where)
			return trace.WriteText(cmd.OutOrStdout(), res)
		},
	}
	src.flags(cmd)
	pf.flags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&packets, "packets", "", "trace every packet of this file (JSON lines; - for standard input) and print JSON lines")
	return cmd
}

// writeIndentedJSON prints v as indented JSON, with <, > and & as they
// are (rules and commands hold them).
func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// batchPacket is one line of --packets. Numbers may be JSON numbers or
// strings.
type batchPacket struct {
	Port      string   `json:"port"`
	Tap       string   `json:"tap"`
	Direction string   `json:"direction"`
	Hook      string   `json:"hook"`
	Protocol  flexText `json:"protocol"`
	Src       string   `json:"src"`
	Dst       string   `json:"dst"`
	SrcPort   flexText `json:"sport"`
	DstPort   flexText `json:"dport"`
	ICMPType  flexText `json:"icmp_type"`
	ICMPCode  flexText `json:"icmp_code"`
	SrcMAC    string   `json:"src_mac"`
	State     string   `json:"state"`
}

// flexText is a JSON string or number, as text.
type flexText string

func (f *flexText) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexText(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, not %s", b)
	}
	*f = flexText(n.String())
	return nil
}

// batchError is a line that could not be traced.
type batchError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

func runTraceBatch(w io.Writer, stdin io.Reader, h *trace.Host, path string) error {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	failed, n := 0, 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var bp batchPacket
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var res any
		if err := dec.Decode(&bp); err != nil {
			res = batchError{Line: n, Error: "bad packet: " + err.Error()}
		} else if tr, err := h.Trace(bp.query()); err != nil {
			res = batchError{Line: n, Error: err.Error()}
		} else {
			res = tr
		}
		if _, bad := res.(batchError); bad {
			failed++
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of the packets could not be traced (see the error lines)", failed)
	}
	return nil
}

func (b *batchPacket) query() trace.Query {
	return trace.Query{
		Port: b.Port, Tap: b.Tap, Direction: trace.Direction(b.Direction), Hook: trace.Hook(b.Hook),
		Protocol: string(b.Protocol), Src: b.Src, Dst: b.Dst, SrcPort: string(b.SrcPort), DstPort: string(b.DstPort),
		ICMPType: string(b.ICMPType), ICMPCode: string(b.ICMPCode), SrcMAC: b.SrcMAC, State: b.State,
	}
}
