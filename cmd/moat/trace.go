package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-sg/moat/internal/store"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/rulesrc"
)

func init() {
	rootCmd.AddCommand(newTraceCmd())
}

// ruleSource is where trace and explain read the rules from (files, a
// spec compiled by moat, or the kernel of a namespace: rulesrc.Source) and
// moat's database, to name the security group rule behind each rule.
type ruleSource struct {
	src rulesrc.Source
	db  string
}

func (s *ruleSource) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.src.IPTablesSave, "iptables-save", "", "read IPv4 rules from this iptables-save [-c] output instead of the kernel")
	f.StringVar(&s.src.IP6TablesSave, "ip6tables-save", "", "read IPv6 rules from this ip6tables-save [-c] output")
	f.StringVar(&s.src.IPSets, "ipset", "", "read ipsets from this ipset save (or ipset list) output")
	f.StringVar(&s.src.Spec, "input", "", "trace what moat would install for this spec (the moat render input)")
	f.StringVar(&s.src.Scenario, "scenario", "", "scenario of --input; required when the file holds several")
	f.BoolVar(&s.src.Compat, "neutron-compat", false, "with --input: compile as Neutron 21 would, bugs included (docs/compatibility.md)")
	f.StringVar(&s.src.Backend, "backend", "auto", "live rules: iptables-legacy, iptables-nft, nftables (moat's nftables tables), or auto (the one holding Neutron's or moat's rules)")
	f.StringVar(&s.src.NFTJSON, "nft-json", "", "read moat's nftables tables from this nft -j list ruleset output (a host on --backend nftables)")
	f.StringVar(&s.src.Netns, "netns", "", "live rules: read them in this network namespace (ip netns exec NAME ...)")
	f.StringVar(&s.db, "db", "", "moat's database, to name the security group rule behind each rule (default: "+store.DefaultURL+" if it exists)")
}

// load returns the host to trace and a note on where its rules came from,
// with the rule ids from moat's database when it is at hand (--db, or the
// default database when it exists) and the rules need it (rulesrc: only
// port portID's, unless wholeHost).
func (s *ruleSource) load(ctx context.Context, stdin io.Reader, portID string, wholeHost bool) (*trace.Host, string, error) {
	h, where, err := s.src.Load(ctx, stdin)
	if err != nil || !s.src.WantsProvenance(portID) {
		return h, where, err
	}
	return h, where + s.withStore(ctx, "rule ids", func(st *store.Store, db string) string {
		return rulesrc.Provenance(ctx, st, db, h, portID, wholeHost)
	}), nil
}

// loadNFT is load for a host of the nftables backend: the store, when at
// hand, names the port's groups for the suggestion.
func (s *ruleSource) loadNFT(ctx context.Context, stdin io.Reader, portID string) (*trace.NFTHost, string, error) {
	h, where, err := s.src.LoadNFT(ctx, stdin)
	if err != nil || portID == "" {
		return h, where, err
	}
	return h, where + s.withStore(ctx, "groups", func(st *store.Store, db string) string {
		return rulesrc.NFTProvenance(ctx, st, db, h, portID)
	}), nil
}

// withStore opens moat's database read-only (--db, or the default one
// when it exists) and runs f with it; the result is a note on what is
// unknown without it ("" when there is no database to ask).
func (s *ruleSource) withStore(ctx context.Context, what string, f func(st *store.Store, db string) string) string {
	db := s.db
	if db == "" {
		if _, err := os.Stat(strings.TrimPrefix(store.DefaultURL, "sqlite://")); err != nil {
			return ""
		}
		db = store.DefaultURL
	}
	st, err := store.OpenMode(ctx, db, store.ReadOnly)
	if err != nil {
		return "; " + what + " unknown: " + err.Error()
	}
	defer st.Close()
	return f(st, db)
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
moat from a spec (--input FILE [--scenario NAME], as moat render). On a host
of the nftables backend (found by --backend auto, or --backend nftables) the
packet goes through moat's nftables tables instead: nft -j list ruleset from
the kernel, or from a file with --nft-json FILE (docs/nftables.md).

--packets FILE traces many packets: one JSON object per line with the keys
port, tap, direction, hook, protocol, src, dst, sport, dport, icmp_type,
icmp_code, src_mac, state; it prints one JSON result per line.

A match trace cannot evaluate (an unmodelled module, a missing ipset, a port
the packet lacks) is reported as unknown, never taken as a miss; the verdict
is "unknown" when such a rule could have decided. See docs/trace.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if src.src.NFT(cmd.Context()) {
				return traceNFT(cmd, &src, &pf, asJSON, packets)
			}
			h, where, err := src.load(cmd.Context(), cmd.InOrStdin(), pf.q.Port, packets != "")
			if err != nil {
				return err
			}
			if packets != "" {
				return traceBatch(cmd.OutOrStdout(), cmd.InOrStdin(), h, packets)
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

// traceNFT is trace on a host of the nftables backend.
func traceNFT(cmd *cobra.Command, src *ruleSource, pf *packetFlags, asJSON bool, packets string) error {
	h, where, err := src.loadNFT(cmd.Context(), cmd.InOrStdin(), pf.q.Port)
	if err != nil {
		return err
	}
	if packets != "" {
		r := cmd.InOrStdin()
		if packets != "-" {
			f, err := os.Open(packets)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		return trace.TraceBatch(h, cmd.OutOrStdout(), r)
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
}

// writeIndentedJSON prints v as indented JSON, with <, > and & as they
// are (rules and commands hold them).
func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// traceBatch traces the packets of the file path ("-" for stdin).
func traceBatch(w io.Writer, stdin io.Reader, h *trace.Host, path string) error {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	return h.TraceBatch(w, r)
}
