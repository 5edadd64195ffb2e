package neutron

import (
	"fmt"
	"strings"
)

// MaxTagLen is the longest tag Neutron accepts.
const MaxTagLen = 255

// ValidateTag is Neutron's validate_tag.
func ValidateTag(tag string) error {
	if len([]rune(tag)) > MaxTagLen {
		return InvalidInput(fmt.Sprintf("'%s' exceeds maximum length of %d", tag, MaxTagLen))
	}
	return nil
}

// ParseTags validates a tags body as Neutron's validate_tags does,
// {"tags": [unique strings]}, and returns the tags.
func ParseTags(body any) ([]string, error) {
	m, ok := body.(map[string]any)
	if !ok {
		return nil, InvalidInput("Invalid tags body")
	}
	raw, ok := m["tags"]
	if !ok {
		return nil, InvalidInput("Invalid tags body")
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, InvalidInput(fmt.Sprintf("'%s' is not a list", PyStr(raw)))
	}
	tags := make([]string, 0, len(list))
	seen := map[string]bool{}
	var dups []string
	for _, it := range list {
		s, ok := it.(string)
		if !ok {
			return nil, InvalidInput(fmt.Sprintf("'%s' is not a valid string", PyStr(it)))
		}
		if err := ValidateTag(s); err != nil {
			return nil, err
		}
		if seen[s] {
			dups = append(dups, s)
		}
		seen[s] = true
		tags = append(tags, s)
	}
	if len(dups) > 0 {
		return nil, InvalidInput(fmt.Sprintf("Duplicate items in the list: '%s'", strings.Join(dups, ", ")))
	}
	return tags, nil
}
