package neutron

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// Reason is a validator's explanation of why a value is invalid; the
// request processing wraps it as "Invalid input for ATTR. Reason: ...".
type Reason string

func (r Reason) Error() string { return string(r) }

func reasonf(format string, args ...any) error { return Reason(fmt.Sprintf(format, args...)) }

// ValidateString is neutron-lib's type:string with a maximum length.
func ValidateString(maxLen int) func(any) error {
	return func(v any) error {
		s, ok := v.(string)
		if !ok {
			return reasonf("'%s' is not a valid string", PyStr(v))
		}
		if maxLen > 0 && len([]rune(s)) > maxLen {
			return reasonf("'%s' exceeds maximum length of %d", s, maxLen)
		}
		return nil
	}
}

// ValidateValues is type:values.
func ValidateValues(valid ...string) func(any) error {
	return func(v any) error {
		s, ok := v.(string)
		if ok {
			for _, x := range valid {
				if s == x {
					return nil
				}
			}
		}
		return reasonf("%s is not in valid_values", PyStr(v))
	}
}

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// IsUUIDLike reports whether s is a UUID as oslo's is_uuid_like accepts it
// (hex digits in 8-4-4-4-12 groups, dashes optional, any case).
func IsUUIDLike(s string) bool { return uuidRe.MatchString(s) }

// ValidateUUID is type:uuid.
func ValidateUUID(v any) error {
	s, ok := v.(string)
	if !ok || !IsUUIDLike(s) {
		return reasonf("'%s' is not a valid UUID", PyStr(v))
	}
	return nil
}

// ConvertToBoolean is neutron-lib's convert_to_boolean (oslo's strict
// bool_from_string).
func ConvertToBoolean(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case json.Number, string:
		s := strings.ToLower(strings.TrimSpace(PyStr(x)))
		switch s {
		case "1", "t", "true", "on", "y", "yes":
			return true, nil
		case "0", "f", "false", "off", "n", "no":
			return false, nil
		}
	}
	return nil, InvalidInput(fmt.Sprintf("'%s' cannot be converted to boolean", PyStr(v)))
}

// pyInt converts a JSON value the way Python's int() would for the values a
// JSON body can hold: integers, integral strings (with surrounding space, a
// sign and digit underscores), and booleans are not accepted here on
// purpose (see docs/compatibility.md). ok is false when int() would fail or
// the value does not fit in an int64.
func pyInt(v any) (int64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
		if strings.ContainsAny(s, ".eE") {
			// int(4.0) is 4 in Python, int(4.5) is 4; only integral
			// floats are accepted here.
			f, ok := new(big.Float).SetString(s)
			if !ok || !f.IsInt() {
				return 0, false
			}
			i, acc := f.Int64()
			return i, acc == big.Exact
		}
	case string:
		s = strings.TrimSpace(x)
		if strings.Contains(s, "_") {
			if strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
				return 0, false
			}
			s = strings.ReplaceAll(s, "_", "")
		}
	default:
		return 0, false
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return i, true
}

// PyInt is Python's int() on a JSON number or numeric string, refusing
// booleans and non-integral numbers.
func PyInt(v any) (int64, bool) {
	if _, isBool := v.(bool); isBool {
		return 0, false
	}
	return pyInt(v)
}
