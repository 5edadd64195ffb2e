package nftables

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// nft 1.0.6 has no quoting for object names (`add chain ip t "x"` is a
// syntax error), so a table, chain, set or map name is written bare and
// must be a token nft's scanner reads as a string: a letter, '_' or '.',
// then letters, digits, '/', '-', '_' and '.'. A bare word that is also one
// of the scanner's keywords is not a string ("fwd", "notrack", "counter"),
// so those are refused too.
func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", kind)
	case len(name) > maxNameLen:
		return fmt.Errorf("%s name %.40q... is longer than %d bytes", kind, name, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if letter || c == '_' || c == '.' || i > 0 && (c >= '0' && c <= '9' || c == '/' || c == '-') {
			continue
		}
		return fmt.Errorf("%s name %q: %q at byte %d is not allowed (names are a letter, '_' or '.' followed by letters, digits, '/', '-', '_', '.')", kind, name, c, i)
	}
	if _, ok := slices.BinarySearch(keywords, name); ok {
		return fmt.Errorf("%s name %q is an nft keyword", kind, name)
	}
	return nil
}

// maxNameLen is the kernel's NFT_NAME_MAXLEN (256) less the terminating NUL.
const maxNameLen = 255

// maxCommentLen is nft's limit on a comment (NFTNL_UDATA_COMMENT_MAXLEN).
const maxCommentLen = 128

// cleanComment makes s safe inside nft's double quotes, which have no
// escapes at all in nft 1.0.6: a '"' ends the string whatever precedes it.
// Double quotes, backslashes and non-printable characters become '_', and
// the result is cut at a character boundary to at most max bytes.
// Comments are for people and for `moat trace` (origin tags), so a lossy
// but never failing treatment is right: a group name with a quote in it
// must not make its port's rules fail.
func cleanComment(s string, max int) string {
	if len(s) <= max && plainASCII(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == '"' || r == '\\' || r == utf8.RuneError || !isPrint(r) {
			r = '_'
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isPrint is printable ASCII, or a printable character beyond it.
func isPrint(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 0x20 && r < 0x7f
	}
	return unicode.IsPrint(r)
}

// checkQuoted checks the content of a quoted string literal: no '"' (it
// would end the string: nft has no escapes), no backslash (nft gives
// "\*" a meaning), no control characters, valid UTF-8.
func checkQuoted(kind, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", kind, s)
	}
	for _, r := range s {
		if r == '"' || r == '\\' || !isPrint(r) {
			return fmt.Errorf("%s %q: character %q is not allowed", kind, s, r)
		}
	}
	return nil
}

// checkIfName checks an interface name as Linux allows it (1 to 15 bytes,
// no '/', ':' or white space) and as nft can carry it in quotes. A '*' is
// refused as well: nft reads a trailing '*' as a wildcard, so a device
// literally named "qbr*" would match every qbr (IfNamePrefix says that on
// purpose).
func checkIfName(name string) error {
	if name == "" || len(name) > 15 {
		return fmt.Errorf("interface name %q: want 1 to 15 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '"' || c == '\\' || c == '*' {
			return fmt.Errorf("interface name %q: character %q is not allowed", name, c)
		}
	}
	return nil
}

// plainASCII reports whether s is printable ASCII without '"' and '\\'.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
