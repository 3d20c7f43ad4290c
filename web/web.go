// Package web serves herald's web page, for people trying the hub in a
// browser: a welcome page at /, a live debugger at /debugger and the trip
// demo at /demo/driver and /demo/rider. The pages are static files
// embedded in the binary (HTML, CSS and JavaScript modules; no build step)
// and clients of the hub's public HTTP API only: EventSource on
// /.well-known/mercure, publications with fetch, the subscriptions API.
//
// Start with Handler. In the development setup (Config.DevKey set) it also
// serves POST /demo/token, which mints the demo's short-lived tokens;
// docs/trip.md describes the demo and its security model.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// Config describes the hub the pages are served beside. Its zero value
// serves the pages of a hub that refuses anonymous subscribers, without
// the subscriptions API, outside the development setup.
type Config struct {
	// Anonymous says whether the hub lets subscribers in without a token.
	Anonymous bool
	// Subscriptions says whether the hub serves the subscriptions API;
	// the demo shows the driver's presence only with it.
	Subscriptions bool
	// CORSOrigins are the origins the hub answers cross-origin requests
	// from ("*" for any); the welcome page shows them.
	CORSOrigins []string
	// DevKey is the HS256 key of the development setup, which verifies
	// both publishers' and subscribers' tokens. With it, and only with
	// it, the handler serves POST /demo/token: anyone who can reach the
	// hub can then mint the demo's tokens.
	DevKey []byte
	// CookieName is the cookie the hub reads a token from, which the
	// token endpoint sets for a rider; mercureAuthorization when empty.
	CookieName string
	// TokenLifetime is how long the demo's tokens are valid; 30 minutes
	// when zero.
	TokenLifetime time.Duration
}

// TopicBase is the start of the demo's trip topics: trip ID is followed
// on TopicBase+ID, and its driver is present while it subscribes to
// TopicBase+ID+"/driver".
const TopicBase = "https://herald.example/demo/trips/"

// The Content-Security-Policy of every answer: the pages load nothing but
// their own files, run no inline script and connect only to their origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// asset is one embedded file of /assets/, with its entity tag.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// handler serves the pages, the assets and, in the development setup,
// the token endpoint.
type handler struct {
	cfg    Config
	pages  map[string]*template.Template // by path
	assets map[string]asset              // by path
	token  http.Handler                  // nil outside the development setup
}

// Handler returns the handler of the pages: GET (and HEAD) /,
// /debugger, /demo/driver, /demo/rider, /assets/… and /favicon.ico, and
// POST /demo/token when cfg.DevKey is set. Other paths are answered 404
// and other methods 405, with the hub's JSON error bodies. Every answer
// carries a strict Content-Security-Policy; pages are not cached, assets
// are revalidated by their ETag.
func Handler(cfg Config) http.Handler {
	if cfg.CookieName == "" {
		cfg.CookieName = "mercureAuthorization"
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = 30 * time.Minute
	}
	h := &handler{cfg: cfg, pages: map[string]*template.Template{}, assets: map[string]asset{}}
	for p, file := range map[string]string{
		"/":            "welcome.html",
		"/debugger":    "debugger.html",
		"/demo/driver": "driver.html",
		"/demo/rider":  "rider.html",
	} {
		// The files are the binary's own: a template that does not parse
		// is a bug that every test finds.
		h.pages[p] = template.Must(template.ParseFS(static, "static/layout.html", "static/"+file))
	}
	err := fs.WalkDir(static, "static/assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) { // not left to the system's MIME table
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		h.assets[strings.TrimPrefix(name, "static")] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: reading the embedded assets: " + err.Error())
	}
	h.assets["/favicon.ico"] = h.assets["/assets/icon.svg"]
	if cfg.DevKey != nil {
		h.token = http.NewCrossOriginProtection().Handler(http.HandlerFunc(h.mint))
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	if r.URL.Path == "/demo/token" && h.token != nil {
		if r.Method != http.MethodPost {
			refuse(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed; allowed: POST", "POST")
			return
		}
		h.token.ServeHTTP(w, r)
		return
	}
	page, a := h.pages[r.URL.Path], h.assets[r.URL.Path]
	if page == nil && a.body == nil {
		refuse(w, http.StatusNotFound, "not_found", "no such page", "")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		refuse(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed; allowed: GET, HEAD", "GET, HEAD")
		return
	}
	if a.body != nil {
		hdr.Set("Content-Type", a.ctype)
		hdr.Set("Cache-Control", "no-cache") // revalidated: a new binary may bring new files
		hdr.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
		return
	}
	var b bytes.Buffer
	if err := page.ExecuteTemplate(&b, "layout", h.facts(r)); err != nil {
		refuse(w, http.StatusInternalServerError, "internal", "rendering the page: "+err.Error(), "")
		return
	}
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	if r.Method == http.MethodGet {
		_, _ = b.WriteTo(w)
	}
}

// facts are what the pages know of the hub, rendered into each page and
// given to its script as JSON.
type facts struct {
	HubURL        string `json:"hubURL"`
	Anonymous     bool   `json:"anonymous"`
	Subscriptions bool   `json:"subscriptions"`
	TokenEndpoint bool   `json:"tokenEndpoint"`
	TopicBase     string `json:"topicBase"`
	// TokenMinutes is the lifetime of the demo's tokens.
	TokenMinutes int `json:"tokenMinutes"`
	// CORSOrigins are the other origins whose pages may use the hub.
	CORSOrigins []string `json:"corsOrigins"`
}

func (h *handler) facts(r *http.Request) facts {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return facts{
		HubURL:        scheme + "://" + r.Host + "/.well-known/mercure",
		Anonymous:     h.cfg.Anonymous,
		Subscriptions: h.cfg.Subscriptions,
		TokenEndpoint: h.token != nil,
		TopicBase:     TopicBase,
		TokenMinutes:  int(h.cfg.TokenLifetime / time.Minute),
		CORSOrigins:   h.cfg.CORSOrigins,
	}
}

// refuse answers with the hub's error format: a JSON body with a stable
// code.
func refuse(w http.ResponseWriter, status int, code, message, allow string) {
	hdr := w.Header()
	if allow != "" {
		hdr.Set("Allow", allow)
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, message})
}
