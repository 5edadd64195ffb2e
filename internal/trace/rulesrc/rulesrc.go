// Package rulesrc loads the rules moat trace and moat explain run against:
// iptables-save and ipset files, what moat compiles for a spec, or the
// kernel of a network namespace (through iptables-save, with the backend
// that holds the layout's chains), and names the security group rule
// behind each rule from moat's store.
package rulesrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/moat-sg/moat/internal/dataplane"
	"github.com/moat-sg/moat/internal/dataplane/iptables"
	"github.com/moat-sg/moat/internal/firewall/spec"
	"github.com/moat-sg/moat/internal/trace"
	"github.com/moat-sg/moat/internal/trace/moatrules"
)

// Source says where the rules come from: files, a spec compiled by moat,
// or (neither given) the kernel.
type Source struct {
	// IPTablesSave and IP6TablesSave are iptables-save [-c] outputs;
	// IPSets an ipset save (or list) output.
	IPTablesSave, IP6TablesSave, IPSets string
	// Spec is a spec file ("-" for standard input) and Scenario the
	// scenario in it ("" when it holds one); Compat compiles it as
	// Neutron 21 would.
	Spec, Scenario string
	Compat         bool
	// Backend is the kernel's iptables variant: iptables-legacy,
	// iptables-nft, or "auto"/"" for the one holding the layout's chains;
	// or "nftables" for moat's nftables tables (see NFT).
	Backend string
	// NFTJSON is a file of `nft -j list ruleset` output ("-" for standard
	// input) of a host on the nftables backend.
	NFTJSON string
	// Netns is the network namespace to read the kernel of ("" for this
	// one).
	Netns string
	// Exec runs the tools for the kernel; nil runs them on the host (in
	// Netns through ip netns exec).
	Exec dataplane.Exec
}

// NFT reports whether the rules are moat's nftables tables: --nft-json,
// --backend nftables, or, with --backend auto and no rules from files or
// a spec, a kernel whose nftables has moat's tables and whose iptables
// holds none of Neutron's chains.
func (s *Source) NFT(ctx context.Context) bool {
	switch {
	case s.NFTJSON != "" || s.Backend == "nftables":
		return true
	case s.Spec != "" || s.fromFiles() || s.IPSets != "" || (s.Backend != "auto" && s.Backend != ""):
		return false
	}
	out, err := s.run(ctx, "nft", "-j", "list", "tables")
	if err != nil || !bytes.Contains(out, []byte(`"name": "moat"`)) {
		return false
	}
	_, v4, err := s.pickBackend(ctx)
	return err == nil && !bytes.Contains(v4, []byte(":neutron-"))
}

// LoadNFT returns the nftables host to trace: --nft-json, or the kernel's
// `nft -j list ruleset`.
func (s *Source) LoadNFT(ctx context.Context, stdin io.Reader) (*trace.NFTHost, string, error) {
	if s.Spec != "" || s.fromFiles() || s.IPSets != "" {
		return nil, "", errors.New("--nft-json and --backend nftables exclude --input, --iptables-save, --ip6tables-save and --ipset")
	}
	if s.NFTJSON != "" {
		r := stdin
		if s.NFTJSON != "-" {
			f, err := os.Open(s.NFTJSON)
			if err != nil {
				return nil, "", err
			}
			defer f.Close()
			r = f
		}
		h, err := trace.LoadNFT(r)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", s.NFTJSON, err)
		}
		return h, "file " + s.NFTJSON + " (nft -j list ruleset)", nil
	}
	out, err := s.run(ctx, "nft", "-j", "list", "ruleset")
	if err != nil {
		return nil, "", fmt.Errorf("read the rules: %w", err)
	}
	h, err := trace.LoadNFT(bytes.NewReader(out))
	if err != nil {
		return nil, "", err
	}
	where := "the kernel (nftables"
	if s.Netns != "" {
		where += ", netns " + s.Netns
	}
	return h, where + ")", nil
}

func (s *Source) fromFiles() bool { return s.IPTablesSave != "" || s.IP6TablesSave != "" }

// Load returns the host to trace and a note on where its rules came from.
func (s *Source) Load(ctx context.Context, stdin io.Reader) (*trace.Host, string, error) {
	switch {
	case s.Spec != "" && (s.fromFiles() || s.IPSets != ""):
		return nil, "", errors.New("--input and --iptables-save/--ip6tables-save/--ipset exclude each other")
	case s.Spec != "":
		return s.loadSpec(stdin)
	case s.fromFiles():
		return s.loadFiles()
	case s.IPSets != "":
		return nil, "", errors.New("--ipset needs --iptables-save or --ip6tables-save")
	}
	return s.loadLive(ctx)
}

func (s *Source) loadSpec(stdin io.Reader) (*trace.Host, string, error) {
	file, err := spec.Load(stdin, s.Spec)
	if err != nil {
		return nil, "", err
	}
	st, name, err := file.CompileState(s.Spec, s.Scenario, s.Compat)
	if err != nil {
		return nil, "", err
	}
	h, err := moatrules.Host(st)
	if err != nil {
		return nil, "", fmt.Errorf("scenario %s: %w", name, err)
	}
	return h, "what moat compiles for scenario " + name + " of " + s.Spec, nil
}

func (s *Source) loadFiles() (*trace.Host, string, error) {
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
	if s.IPTablesSave != "" {
		if h.IPv4, err = read(s.IPTablesSave, false); err != nil {
			return nil, "", err
		}
	}
	if s.IP6TablesSave != "" {
		if h.IPv6, err = read(s.IP6TablesSave, true); err != nil {
			return nil, "", err
		}
	}
	if s.IPSets != "" {
		f, err := os.Open(s.IPSets)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		if h.Sets, err = trace.ParseIPSets(f); err != nil {
			return nil, "", fmt.Errorf("%s: %w", s.IPSets, err)
		}
	}
	var files []string
	for _, f := range []string{s.IPTablesSave, s.IP6TablesSave, s.IPSets} {
		if f != "" {
			files = append(files, f)
		}
	}
	return h, "files " + strings.Join(files, ", "), nil
}

// liveTimeout bounds each tool the kernel is read with.
const liveTimeout = 60 * time.Second

// run runs a tool for the kernel.
func (s *Source) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ex := s.Exec
	if ex == nil {
		ex = dataplane.Host{}
		if s.Netns != "" {
			ex = dataplane.Netns{Name: s.Netns}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	return ex.Run(ctx, nil, name, args...)
}

// save runs an iptables-save tool with counters, again when it failed only
// because another process committed while it read (iptables.RetrySave).
func (s *Source) save(ctx context.Context, tool string) ([]byte, error) {
	return iptables.RetrySave(ctx, func(ctx context.Context) ([]byte, error) { return s.run(ctx, tool, "-c") })
}

// pickBackend picks the iptables variant to read: the one whose tables
// hold Neutron's or moat's chains. iptables-legacy-save is never run
// unless legacy tables exist, because reading them through the legacy
// interface instantiates them in the namespace (after which iptables-nft
// warns about legacy tables forever). It returns the IPv4 dump when it
// read it on the way.
func (s *Source) pickBackend(ctx context.Context) (iptables.Backend, []byte, error) {
	if s.Backend != "auto" && s.Backend != "" {
		b, err := iptables.ParseBackend(s.Backend)
		return b, nil, err
	}
	nftOut, nftErr := s.save(ctx, iptables.NFT.Command(iptables.IPv4, "save"))
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

func (s *Source) loadLive(ctx context.Context) (*trace.Host, string, error) {
	b, v4out, err := s.pickBackend(ctx)
	if err != nil {
		return nil, "", err
	}
	h := &trace.Host{}
	if v4out == nil {
		if v4out, err = s.save(ctx, b.Command(iptables.IPv4, "save")); err != nil {
			return nil, "", err
		}
	}
	if !bytes.Contains(v4out, []byte("\n*")) && !bytes.HasPrefix(v4out, []byte("*")) {
		ns := "this network namespace"
		if s.Netns != "" {
			ns = "network namespace " + s.Netns
		}
		return nil, "", fmt.Errorf("%s shows no iptables tables in %s: run moat in the host's namespace (ip netns exec HOST moat ..., or --netns HOST), or choose the other --backend", b.Command(iptables.IPv4, "save"), ns)
	}
	if h.IPv4, err = trace.ParseSaveString(string(v4out), false); err != nil {
		return nil, "", fmt.Errorf("%s output: %w", b.Command(iptables.IPv4, "save"), err)
	}
	where := "the kernel (" + string(b)
	if s.Netns != "" {
		where += ", netns " + s.Netns
	}
	where += ")"
	// Without IPv6 rules or ipsets a trace still works for what does not
	// need them; say what is missing.
	if out, err := s.save(ctx, b.Command(iptables.IPv6, "save")); err == nil {
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
