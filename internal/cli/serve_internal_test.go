package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/herald-sse/herald/hub"
)

// /readyz fails from the moment a shutdown begins, before the hub has
// stopped; /healthz does not.
func TestReadyzStopping(t *testing.T) {
	t.Parallel()
	h, err := hub.New(hub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var stopping atomic.Bool
	r := routes(h, &stopping, false, nil)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a running hub: %d %s", code, body)
	}
	stopping.Store(true)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("/readyz once stopping: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz once stopping: %d", code)
	}
	stopping.Store(false)
	_ = h.Close()
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("/readyz of a hub shut down: %d %s", code, body)
	}
}
