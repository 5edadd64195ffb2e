package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moat-sg/moat/internal/httpserve"
)

// TestStatusRecorderReachesTheConnection: a handler behind the server's
// response recorder can still lift the write timeout (the seam of a
// streaming route, httpserve.NoWriteTimeout) and flush.
func TestStatusRecorderReachesTheConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if err := httpserve.NoWriteTimeout(rec); err != nil {
			t.Errorf("NoWriteTimeout through the recorder: %v", err)
		}
		if err := http.NewResponseController(rec).Flush(); err != nil {
			t.Errorf("Flush through the recorder: %v", err)
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
