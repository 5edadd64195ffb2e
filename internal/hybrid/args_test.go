package hybrid

import (
	"slices"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	for in, want := range map[string][]string{
		"":                             {},
		"  -j   ACCEPT ":               {"-j", "ACCEPT"},
		"-s 10.0.0.0/8\t-j X":          {"-s", "10.0.0.0/8", "-j", "X"},
		`--comment "a b" -j X`:         {"--comment", "a b", "-j", "X"},
		`--comment "a \"q\" \\"`:       {"--comment", `a "q" \`},
		`"ab"c`:                        {"ab", "c"},
		`a"b c"`:                       {"ab c"},
		`a"b c"d`:                      {"ab c", "d"},
		`-m comment --comment "" -j X`: {"-m", "comment", "--comment", "", "-j", "X"},
		`"\x"`:                         {"x"},
	} {
		got, err := SplitArgs(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`"`, `-m comment --comment "open -j X`, `"a\"`} {
		if _, err := SplitArgs(bad); err != ErrUnterminatedQuote {
			t.Errorf("SplitArgs(%q): error %v, want %v", bad, err, ErrUnterminatedQuote)
		}
	}
}

// What QuoteArg writes, SplitArgs reads back as one word.
func TestQuoteArgRoundTrip(t *testing.T) {
	for _, a := range []string{"", "x", "a b", `"`, `\`, `a\"b`, "it's", "10.0.0.0/8", "\t"} {
		got, err := SplitArgs("-x " + QuoteArg(a) + " -y")
		if err != nil || !slices.Equal(got, []string{"-x", a, "-y"}) {
			t.Errorf("QuoteArg(%q) = %s reads back as %q, %v", a, QuoteArg(a), got, err)
		}
	}
}

// SaveString is libxtables' xtables_save_string, as iptables-save prints
// comments.
func TestSaveString(t *testing.T) {
	for in, want := range map[string]string{
		"plain_Word-09":   "plain_Word-09",
		"":                `""`,
		"Set zone for p1": `"Set zone for p1"`,
		`say "hi"`:        `"say \"hi\""`,
		`it's \ here`:     `"it\'s \\ here"`,
		"10.0.0.1":        `"10.0.0.1"`,
	} {
		if got := SaveString(in); got != want {
			t.Errorf("SaveString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRuleTarget(t *testing.T) {
	for rule, want := range map[string]string{
		"-j neutron-filter-top":                                                    "neutron-filter-top",
		`-m comment --comment "-j FAKE" -j ACCEPT`:                                 "ACCEPT",
		`-m comment --comment "say \"-j FAKE\" -g X" -g neutron-openvswi-sg-chain`: "neutron-openvswi-sg-chain",
		"-p tcp -m tcp --dport 22":                                                 "",
		"":                                                                         "",
		"--jump LIBVIRT_FWI":                                                       "LIBVIRT_FWI",
		`-m physdev --physdev-in tap1 -m comment --comment x -j neutron-openvswi-o1-2`: "neutron-openvswi-o1-2",
		`-m comment --comment "unterminated -j X`:                                      "",
	} {
		if got := RuleTarget(rule); got != want {
			t.Errorf("RuleTarget(%q) = %q, want %q", rule, got, want)
		}
	}
}
