package hybrid

import (
	"strconv"
	"strings"
	"testing"
)

// savedProtocols is what `iptables-save` (1.8.9, legacy and nft, IPv4 and
// IPv6 alike) printed on Debian 12 after `-A INPUT -p N -j ACCEPT` for N =
// 0..255, in order; "none" means the rule had no -p at all.
const savedProtocols = `
none icmp igmp ggp ipencap st tcp 7 egp igp 10 11 pup 13 14 15 16 udp 18 19 hmp 21 xns-idp 23 24 25
26 rdp 28 iso-tp4 30 31 32 dccp 34 35 xtp ddp idpr-cmtp 39 40 ipv6 42 ipv6-route ipv6-frag idrp
rsvp gre 48 49 esp ah 52 53 54 55 56 skip ipv6-icmp ipv6-nonxt ipv6-opts 61 62 63 64 65 66 67 68 69
70 71 72 rspf 74 75 76 77 78 79 80 vmtp 82 83 84 85 86 87 eigrp ospf 90 91 92 ax.25 ipip 95 96
etherip encap 99 100 101 102 pim 104 105 106 107 ipcomp 109 110 111 vrrp 113 114 l2tp 116 117 118
119 120 121 122 123 isis 125 126 127 128 129 130 131 sctp fc 134 mobility-header udplite mpls-in-ip
manet hip shim6 wesp rohc ethernet 144 145 146 147 148 149 150 151 152 153 154 155 156 157 158 159
160 161 162 163 164 165 166 167 168 169 170 171 172 173 174 175 176 177 178 179 180 181 182 183 184
185 186 187 188 189 190 191 192 193 194 195 196 197 198 199 200 201 202 203 204 205 206 207 208 209
210 211 212 213 214 215 216 217 218 219 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234
235 236 237 238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255`

func TestIptablesProtocolNameMatchesIptablesSave(t *testing.T) {
	want := strings.Fields(savedProtocols)
	if len(want) != 256 {
		t.Fatalf("fixture has %d entries, want 256", len(want))
	}
	for n, w := range want {
		if w == "none" {
			w = ""
		}
		if got := IptablesProtocolName(n); got != w {
			t.Errorf("IptablesProtocolName(%d) = %q, iptables-save prints %q", n, got, w)
		}
		// Whatever iptables-save prints must read back as the same number.
		if w == "" {
			continue
		}
		if got, ok := ParseIptablesProtocol(w); !ok || got != n {
			t.Errorf("ParseIptablesProtocol(%q) = %d, %v; want %d", w, got, ok, n)
		}
	}
}

func TestParseIptablesProtocol(t *testing.T) {
	// Observed with iptables-legacy 1.8.9: `iptables -A INPUT -p ARG` then
	// iptables-save.
	tests := []struct {
		arg  string
		want int
		ok   bool
	}{
		{"tcp", 6, true},
		{"TCP", 6, true},
		{"6", 6, true},
		{"06", 6, true},
		{" 6", 6, true},
		{"010", 8, true}, // C octal: Neutron's stored "010" (10) becomes egp
		{"0x4", 4, true},
		{"ipip", 94, true}, // /etc/protocols, not Neutron's 4
		{"IPIP", 94, true},
		{"ipencap", 4, true},
		{"ip", 0, true},
		{"hopopt", 0, true},
		{"all", 0, true},
		{"icmpv6", 58, true},
		{"ipv6-icmp", 58, true},
		{"mh", 135, true},
		{"ipv6-mh", 135, true},
		{"udplite", 136, true},
		{"255", 255, true},
		{"08", 0, false},
		{"256", 0, false},
		{"-1", 0, false},
		{"ipv6-encap", 0, false}, // Neutron's name; iptables only knows "ipv6"
		{"pgm", 0, false},
		{"", 0, false},
		{"mptcp", 0, false}, // 262 is not an IP protocol number
	}
	for _, tt := range tests {
		got, ok := ParseIptablesProtocol(tt.arg)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseIptablesProtocol(%q) = %d, %v; want %d, %v", tt.arg, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIptablesProtocolNameRange(t *testing.T) {
	for _, n := range []int{-1, 256} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("IptablesProtocolName(%s) did not panic", strconv.Itoa(n))
				}
			}()
			IptablesProtocolName(n)
		}()
	}
}
