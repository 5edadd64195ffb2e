package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/moat-sg/moat/internal/neutron"
)

// kv is one member of an ordered JSON object. Neutron's responses have a
// fixed key order that clients' fixtures and humans rely on; Go maps would
// sort them instead.
type kv struct {
	K string
	V any
}

// object is a JSON object that keeps its key order.
type object []kv

func (o object) MarshalJSON() ([]byte, error) {
	return appendJSON(nil, o)
}

// appendJSON encodes v in one pass. The API's responses are trees of
// objects, lists, strings, numbers and booleans; going through
// json.Marshal for each nested object would re-validate and re-compact
// every level again (most of a large list's CPU). Other types fall back to
// encoding/json.
func appendJSON(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case object:
		b = append(b, '{')
		for i, f := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.K)
			b = append(b, ':')
			if b, err = appendJSON(b, f.V); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []object:
		b = append(b, '[')
		for i, o := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, o); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case string:
		return appendString(b, x), nil
	case []string:
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']'), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	default:
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return append(b, enc...), nil
	}
}

// appendString quotes s as encoding/json does (including its escaping of
// <, > and & and of invalid UTF-8), without its reflection.
func appendString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, _ := json.Marshal(s)
	return append(b, enc...)
}

// get returns the value of key k.
func (o object) get(k string) (any, bool) {
	for _, f := range o {
		if f.K == k {
			return f.V, true
		}
	}
	return nil, false
}

// only keeps the requested fields, in the object's order (Neutron's
// fields= query parameter). No fields means all.
func (o object) only(fields []string) object {
	if len(fields) == 0 {
		return o
	}
	want := map[string]bool{}
	for _, f := range fields {
		want[f] = true
	}
	out := object{}
	for _, f := range o {
		if want[f.K] {
			out = append(out, f)
		}
	}
	return out
}

// writeJSON writes a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := appendJSON(make([]byte, 0, 1024), v)
	if err != nil {
		// Only our own values are marshalled; this is a programming error.
		slog.Error("encode response", "err", err)
		status, body = http.StatusInternalServerError, neutronErrorBody(neutron.InternalError())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeNoContent(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

func neutronErrorBody(e *neutron.Error) []byte {
	b, _ := json.Marshal(map[string]any{"NeutronError": object{
		{"type", e.Type}, {"message", e.Message}, {"detail", ""},
	}})
	return b
}

// writeError renders err as Neutron does: a NeutronError body with the
// status of its exception class. Anything that is not a *neutron.Error is
// an internal failure: it is logged with the request id and answered with
// Neutron's generic 500, never with its text.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ne *neutron.Error
	if !errors.As(err, &ne) {
		slog.Error("request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", w.Header().Get(requestIDHeader), "err", err)
		ne = neutron.InternalError()
	}
	body := neutronErrorBody(ne)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ne.Status)
	w.Write(body)
}
