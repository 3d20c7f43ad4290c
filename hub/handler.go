package hub

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// Path is where the hub serves subscriptions and publications.
const Path = "/.well-known/mercure"

// subscriptionsPath is the root of the subscriptions API.
const subscriptionsPath = Path + "/subscriptions"

const levelDebug = slog.LevelDebug

// ServeHTTP serves the Mercure protocol:
//
//	GET  /.well-known/mercure                  subscribe (Server-Sent Events)
//	POST /.well-known/mercure                  publish
//	GET  /.well-known/mercure/subscriptions…   the subscriptions API, when enabled
//
// and answers CORS preflight requests for them. Other paths get 404.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == Path:
		if h.cors(w, r) {
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.subscribe(w, r)
		case http.MethodPost:
			h.publish(w, r)
		default:
			h.methodNotAllowed(w, r, "GET, HEAD, POST, OPTIONS")
		}
	case h.cfg.Subscriptions && (path == subscriptionsPath || strings.HasPrefix(path, subscriptionsPath+"/")):
		if h.cors(w, r) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, r, "GET, HEAD, OPTIONS")
			return
		}
		h.subscriptions(w, r)
	default:
		h.refuse(w, r, &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such resource"})
	}
}

func (h *Hub) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	h.refuse(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: codeMethod, Message: "method not allowed; allowed: " + allow})
}

// cors sets the CORS headers of a request from an allowed origin, and
// answers a preflight request, reporting true when it did. Credentials are
// allowed, so the allowed origin is echoed, never "*", which browsers
// refuse with credentials.
func (h *Hub) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	hd := w.Header()
	if origin == "" || len(h.cfg.CORSOrigins) == 0 {
		if preflight {
			w.WriteHeader(http.StatusNoContent)
		}
		return preflight
	}
	hd.Add("Vary", "Origin")
	if !slices.Contains(h.cfg.CORSOrigins, "*") && !slices.Contains(h.cfg.CORSOrigins, origin) {
		if preflight {
			w.WriteHeader(http.StatusNoContent) // without Allow-Origin: the browser refuses
		}
		return preflight
	}
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Set("Access-Control-Allow-Credentials", "true")
	if !preflight {
		hd.Set("Access-Control-Expose-Headers", "Last-Event-ID, Mercure-Last-Event-ID, ETag")
		return false
	}
	hd.Add("Vary", "Access-Control-Request-Method")
	hd.Add("Vary", "Access-Control-Request-Headers")
	hd.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS")
	hd.Set("Access-Control-Allow-Headers", "Authorization, Cache-Control, Last-Event-ID, Content-Type")
	hd.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
