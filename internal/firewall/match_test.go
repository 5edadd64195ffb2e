package firewall

import (
	"testing"

	"github.com/moat-sg/moat/internal/hybrid"
)

func ip(n int) *int { return &n }

func TestProtoMatch(t *testing.T) {
	tests := []struct {
		name    string
		rule    Rule
		v6      bool
		compat  bool
		want    string // iptables-save text
		wantKey string // "" when equal to want
		wantErr bool
	}{
		{name: "any", rule: Rule{}, want: ""},
		{name: "tcp port", rule: Rule{Protocol: "tcp", PortRangeMin: ip(22), PortRangeMax: ip(22)}, want: "-p tcp -m tcp --dport 22"},
		{name: "tcp by number", rule: Rule{Protocol: "6", PortRangeMin: ip(80), PortRangeMax: ip(90)}, want: "-p tcp -m tcp -m multiport --dports 80:90"},
		{name: "udplite single", rule: Rule{Protocol: "udplite", PortRangeMin: ip(5000), PortRangeMax: ip(5000)}, want: "-p udplite -m multiport --dports 5000"},
		{name: "sctp", rule: Rule{Protocol: "132", PortRangeMin: ip(9), PortRangeMax: ip(9)}, want: "-p sctp -m sctp --dport 9"},
		{name: "dccp range", rule: Rule{Protocol: "dccp", PortRangeMin: ip(1), PortRangeMax: ip(2)}, want: "-p dccp -m dccp -m multiport --dports 1:2"},
		{name: "icmp type/code", rule: Rule{Protocol: "icmp", PortRangeMin: ip(8), PortRangeMax: ip(0)}, want: "-p icmp -m icmp --icmp-type 8/0"},
		{name: "icmp type only", rule: Rule{Protocol: "1", PortRangeMin: ip(3)}, want: "-p icmp -m icmp --icmp-type 3"},
		// The kernel's icmp match treats type 255 as "any type".
		{name: "icmp 255", rule: Rule{Protocol: "icmp", PortRangeMin: ip(255), PortRangeMax: ip(4)}, want: "-p icmp -m icmp --icmp-type any", wantKey: "-p icmp -m icmp --icmp-type 255/4"},
		{name: "icmpv6 255", rule: Rule{Protocol: "ipv6-icmp", PortRangeMin: ip(255)}, v6: true, want: "-p ipv6-icmp -m icmp6 --icmpv6-type 255"},
		{name: "legacy icmp name on IPv6", rule: Rule{Protocol: "icmp", PortRangeMin: ip(128)}, v6: true, want: "-p ipv6-icmp -m icmp6 --icmpv6-type 128"},
		{name: "ipv6-encap", rule: Rule{Protocol: "ipv6-encap"}, v6: true, want: "-p ipv6"},
		{name: "pgm has no name", rule: Rule{Protocol: "pgm"}, want: "-p 113"},
		{name: "gre", rule: Rule{Protocol: "47"}, want: "-p gre"},

		// The deliberate protocol fixes and what Neutron does instead.
		{name: "ipip is 4", rule: Rule{Protocol: "ipip"}, want: "-p ipencap"},
		{name: "compat ipip is 94", rule: Rule{Protocol: "ipip"}, compat: true, want: "-p ipip"},
		{name: "4 either way", rule: Rule{Protocol: "4"}, compat: true, want: "-p ipencap"},
		{name: "ip is any", rule: Rule{Protocol: "ip"}, want: ""},
		{name: "compat ip writes -p ip", rule: Rule{Protocol: "ip"}, compat: true, want: "", wantKey: "-p ip"},
		{name: "0 is any", rule: Rule{Protocol: "0"}, compat: true, want: ""},
		{name: "zero-padded keeps its ports", rule: Rule{Protocol: "06", PortRangeMin: ip(22), PortRangeMax: ip(22)}, want: "-p tcp -m tcp --dport 22"},
		{name: "compat zero-padded loses its ports", rule: Rule{Protocol: "06", PortRangeMin: ip(22), PortRangeMax: ip(22)}, compat: true, want: "-p tcp", wantKey: "-p 06"},
		{name: "compat 010 is octal", rule: Rule{Protocol: "010"}, compat: true, want: "-p egp", wantKey: "-p 010"},
		{name: "010 is ten", rule: Rule{Protocol: "010"}, want: "-p 10"},
		{name: "compat 08 is refused by iptables", rule: Rule{Protocol: "08"}, compat: true, wantErr: true},
		{name: "unknown name", rule: Rule{Protocol: "bogus"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := resolveProtocol(tt.rule.Protocol, tt.v6, tt.compat)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			var r hybrid.Rule
			key := protoMatch(&r.Match, &tt.rule, p)
			save := r.Iptables()
			if save != tt.want || key != tt.wantKey {
				t.Errorf("got %q (key %q), want %q (key %q)", save, key, tt.want, tt.wantKey)
			}
		})
	}
}
