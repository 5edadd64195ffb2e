package api

import (
	"bytes"
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
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.K)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.V)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
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
	body, err := json.Marshal(v)
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
