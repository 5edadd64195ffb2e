package hybrid

import (
	"errors"
	"strings"
)

// A rule's arguments as iptables-restore reads them (libxtables'
// add_param_to_argv): words are separated by blanks (space, tab); a double
// quote opens a quoted part, inside which blanks are kept and a backslash
// takes the next character as it is; the closing quote ends the word.
// Quotes may open in the middle of a word ("ab"c is "ab", "c"; a"b c" is
// "ab c"). An empty pair of quotes is an empty word.

// ErrUnterminatedQuote is SplitArgs' error for a quote that never closes.
var ErrUnterminatedQuote = errors.New("unterminated quote")

// SplitArgs splits a rule (or any iptables-restore line) into its
// arguments. Words without quotes are substrings of s.
func SplitArgs(s string) ([]string, error) {
	args := make([]string, 0, 16)
	for i := 0; ; {
		start, end, quoted, err := scanArg(s, i)
		if err != nil {
			return nil, err
		}
		if start == end && !quoted {
			return args, nil
		}
		if quoted {
			args = append(args, unquote(s[start:end]))
		} else {
			args = append(args, s[start:end])
		}
		i = end
	}
}

// scanArg finds the word at or after s[i]: s[start:end] as written, quotes
// and escapes included, and whether it holds a quote. start == end without
// quotes means no word is left.
func scanArg(s string, i int) (start, end int, quoted bool, err error) {
	for i < len(s) && isBlank(s[i]) {
		i++
	}
	start = i
	for i < len(s) && !isBlank(s[i]) {
		if s[i] != '"' {
			i++
			continue
		}
		quoted = true
		for i++; ; i++ {
			switch {
			case i >= len(s):
				return 0, 0, false, ErrUnterminatedQuote
			case s[i] == '\\' && i+1 < len(s):
				i++
				continue
			case s[i] != '"':
				continue
			}
			break
		}
		return start, i + 1, true, nil // the closing quote ends the word
	}
	return start, i, quoted, nil
}

// unquote reads a word scanArg found with quotes.
func unquote(w string) string {
	var b strings.Builder
	b.Grow(len(w))
	in := false
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == '"':
			in = !in
			continue
		case in && c == '\\' && i+1 < len(w):
			i++
			c = w[i]
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// QuoteArg spells an argument so that SplitArgs reads it back as the one
// word it is: as it is when it holds no blank, quote or backslash, else in
// double quotes with " and \ escaped.
func QuoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"\\'") {
		return a
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
}

// SaveString spells a string option (a comment) as iptables-save prints it
// (libxtables' xtables_save_string): as it is when it is made of letters,
// digits, '_' and '-' only, else in double quotes with ", \ and '
// escaped.
func SaveString(s string) string { return string(appendSaveString(nil, s)) }

func appendSaveString(b []byte, s string) []byte {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if plain {
		return append(b, s...)
	}
	b = append(b, '"')
	from := 0 // s[from:i] is copied in one piece
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			b = append(append(b, s[from:i]...), '\\', c)
			from = i + 1
		}
	}
	return append(append(b, s[from:]...), '"')
}

// RuleTarget is the chain or target a rule jumps or goes to ("-j X" or
// "-g X"), or "" if it has none (or does not split). It allocates nothing:
// targets and their options are never quoted.
func RuleTarget(rule string) string {
	next := false
	for i := 0; ; {
		start, end, quoted, err := scanArg(rule, i)
		if err != nil || start == end && !quoted {
			return ""
		}
		w := rule[start:end]
		if next {
			if quoted {
				return unquote(w)
			}
			return w
		}
		switch w {
		case "-j", "--jump", "-g", "--goto":
			next = true
		}
		i = end
	}
}
