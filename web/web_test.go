package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
	"github.com/herald-sse/herald/web"
)

var devKey = []byte("the development setup's key, 32 bytes or more")

// newHub serves a hub (its key devKey, refusing anonymous subscribers, with
// the subscriptions API) and the page beside it, as herald serve does.
func newHub(t *testing.T, cfg web.Config) *httptest.Server {
	t.Helper()
	k, err := hub.NewKey("HS256", devKey)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{PublisherKey: k, SubscriberKey: k, Subscriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	mux := http.NewServeMux()
	mux.Handle(hub.Path, h)
	mux.Handle(hub.Path+"/", h)
	mux.Handle("/", web.Handler(cfg))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func request(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Every path, its type, its caching, and the security headers on each.
func TestRoutes(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler(web.Config{Anonymous: true}))
	t.Cleanup(srv.Close)
	html, js, css, svg, jsonType := "text/html; charset=utf-8", "text/javascript; charset=utf-8", "text/css; charset=utf-8", "image/svg+xml", "application/json"
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
		contains     string
	}{
		{"GET", "/", 200, html, "<h1>This is a herald hub</h1>"},
		{"GET", "/debugger", 200, html, `src="/assets/debugger.js"`},
		{"GET", "/demo/driver", 200, html, `src="/assets/driver.js"`},
		{"GET", "/demo/rider", 200, html, `src="/assets/rider.js"`},
		{"GET", "/demo/rider?trip=abc", 200, html, `<form id="follow">`},
		{"HEAD", "/", 200, html, ""},
		{"GET", "/assets/herald.css", 200, css, "color-scheme"},
		{"GET", "/assets/common.js", 200, js, "export"},
		{"GET", "/assets/debugger.js", 200, js, "import"},
		{"GET", "/assets/driver.js", 200, js, "import"},
		{"GET", "/assets/rider.js", 200, js, "import"},
		{"GET", "/assets/route.js", 200, js, "export"},
		{"GET", "/assets/icon.svg", 200, svg, "<svg"},
		{"GET", "/favicon.ico", 200, svg, "<svg"},
		{"GET", "/nope", 404, jsonType, `"error":"not_found"`},
		{"GET", "/assets/", 404, jsonType, `"error":"not_found"`},
		{"GET", "/assets/nope.js", 404, jsonType, `"error":"not_found"`},
		{"GET", "/debugger/", 404, jsonType, `"error":"not_found"`},
		{"GET", "/demo/token", 404, jsonType, `"error":"not_found"`}, // not in development mode
		{"POST", "/demo/token", 404, jsonType, `"error":"not_found"`},
		{"POST", "/", 405, jsonType, `"error":"method_not_allowed"`},
		{"DELETE", "/assets/common.js", 405, jsonType, `"error":"method_not_allowed"`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, request(t, tc.method, srv.URL+tc.path, nil))
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("%s %s, want %d %s", resp.Status, resp.Header.Get("Content-Type"), tc.status, tc.ctype)
			}
			if !strings.Contains(body, tc.contains) || (tc.method == "HEAD" && body != "") {
				t.Errorf("body %.200q, want one with %q", body, tc.contains)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("Content-Security-Policy %q, without %q", csp, d)
				}
			}
			if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
				t.Errorf("Content-Security-Policy %q allows more than the origin", csp)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			if resp.StatusCode == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow: %q", resp.Header.Get("Allow"))
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", cc)
			}
			if strings.HasPrefix(tc.path, "/assets/") && resp.StatusCode == 200 && resp.Header.Get("ETag") == "" {
				t.Error("an asset without an ETag")
			}
		})
	}
}

// An asset is revalidated by its ETag: 304 when it has not changed.
func TestAssetETag(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler(web.Config{}))
	t.Cleanup(srv.Close)
	resp, _ := do(t, request(t, "GET", srv.URL+"/assets/common.js", nil))
	etag := resp.Header.Get("ETag")
	req := request(t, "GET", srv.URL+"/assets/common.js", nil)
	req.Header.Set("If-None-Match", etag)
	if resp, body := do(t, req); resp.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("with its ETag: %s %q, want 304", resp.Status, body)
	}
	req = request(t, "GET", srv.URL+"/assets/common.js", nil)
	req.Header.Set("If-None-Match", `"another"`)
	if resp, _ := do(t, req); resp.StatusCode != http.StatusOK {
		t.Errorf("with another ETag: %s, want 200", resp.Status)
	}
}

var factsJSON = regexp.MustCompile(`<script type="application/json" id="facts">([^<]*)</script>`)

// The pages know what the hub is: its URL, whether it allows anonymous
// subscribers, serves the subscriptions API, mints demo tokens.
func TestFacts(t *testing.T) {
	t.Parallel()
	for _, cfg := range []web.Config{{}, {Anonymous: true, Subscriptions: true, CORSOrigins: []string{"*"}, DevKey: devKey}} {
		srv := httptest.NewServer(web.Handler(cfg))
		t.Cleanup(srv.Close)
		for _, path := range []string{"/", "/debugger", "/demo/driver", "/demo/rider"} {
			_, body := do(t, request(t, "GET", srv.URL+path, nil))
			m := factsJSON.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("%s: no facts in %s", path, body)
			}
			var f struct {
				HubURL        string
				Anonymous     bool
				Subscriptions bool
				TokenEndpoint bool
				TopicBase     string
			}
			if err := json.Unmarshal([]byte(m[1]), &f); err != nil {
				t.Fatalf("%s: facts %s: %v", path, m[1], err)
			}
			want := f
			want.HubURL, want.Anonymous, want.Subscriptions, want.TokenEndpoint, want.TopicBase = srv.URL+"/.well-known/mercure", cfg.Anonymous, cfg.Subscriptions, cfg.DevKey != nil, web.TopicBase
			if f != want {
				t.Errorf("%s: facts %+v, want %+v", path, f, want)
			}
		}
		_, body := do(t, request(t, "GET", srv.URL+"/", nil))
		if anon := strings.Contains(body, "allowed: a subscriber without a token"); anon != cfg.Anonymous {
			t.Errorf("the welcome page says anonymous subscribers are allowed: %v, want %v", anon, cfg.Anonymous)
		}
		if any := strings.Contains(body, "<code>*</code>: pages from any origin may subscribe"); any != (cfg.CORSOrigins != nil) {
			t.Errorf("the welcome page says pages from any origin may use the hub: %v, want %v", any, cfg.CORSOrigins != nil)
		}
		if dev := strings.Contains(body, "Anyone who can reach this hub can mint them"); dev != (cfg.DevKey != nil) {
			t.Errorf("the welcome page says the demo's tokens are on: %v, want %v", dev, cfg.DevKey != nil)
		}
	}
}

// mintToken asks for a demo token and returns the answer, the token (from
// the body or the cookie) and its claims, checked with the key.
func mintToken(t *testing.T, base, role, trip string) (web.Grant, *http.Cookie, jwt.MapClaims) {
	t.Helper()
	req := request(t, "POST", base+"/demo/token", strings.NewReader(url.Values{"role": {role}, "trip": {trip}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := do(t, req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /demo/token %s %s: %s %s", role, trip, resp.Status, body)
	}
	var g web.Grant
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	var cookie *http.Cookie
	tok := g.Token
	for _, c := range resp.Cookies() {
		if c.Name == "mercureAuthorization" {
			cookie, tok = c, c.Value
		}
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return devKey, nil }, jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("the %s token %q: %v", role, tok, err)
	}
	return g, cookie, claims
}

func strs(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

// The token endpoint's tokens: each role's claims for one trip, a
// driver's in the answer, a rider's only in the hub's cookie.
func TestTokenClaims(t *testing.T) {
	t.Parallel()
	srv := newHub(t, web.Config{DevKey: devKey, TokenLifetime: 10 * time.Minute})
	trip := web.TopicBase + "a-1"
	presence := "/.well-known/mercure/subscriptions/" + url.QueryEscape(trip+"/driver")

	g, cookie, claims := mintToken(t, srv.URL, "driver", "a-1")
	if cookie != nil || g.Token == "" {
		t.Errorf("a driver's token: cookie %v, in the body %q; want the body's only", cookie, g.Token)
	}
	want := web.Grant{Role: "driver", Trip: "a-1", Topic: trip, DriverTopic: trip + "/driver", Presence: presence, PresenceEvents: presence + "/{subscriber}", Token: g.Token, Expires: g.Expires}
	if g != want {
		t.Errorf("the driver's grant %+v, want %+v", g, want)
	}
	m := claims["mercure"].(map[string]any)
	if pub, sub := strs(m["publish"]), strs(m["subscribe"]); !slices.Equal(pub, []string{trip}) || !slices.Equal(sub, []string{trip, trip + "/driver"}) {
		t.Errorf("the driver's claims: publish %q, subscribe %q", pub, sub)
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if exp == nil || iat == nil || exp.Sub(iat.Time) < 9*time.Minute || exp.Sub(iat.Time) > 10*time.Minute {
		t.Errorf("the driver's token: iat %v, exp %v; want 10 minutes apart", iat, exp)
	}

	g, cookie, claims = mintToken(t, srv.URL, "rider", "a-1")
	if cookie == nil || g.Token != "" {
		t.Fatalf("a rider's token: cookie %v, in the body %q; want the cookie's only", cookie, g.Token)
	}
	if cookie.Path != "/.well-known/mercure" || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.MaxAge != 600 {
		t.Errorf("the rider's cookie: %+v", cookie)
	}
	m = claims["mercure"].(map[string]any)
	if sub := strs(m["subscribe"]); m["publish"] != nil || !slices.Equal(sub, []string{trip, presence, presence + "/{subscriber}"}) {
		t.Errorf("the rider's claims: publish %v, subscribe %q", m["publish"], sub)
	}
	if p := m["payload"].(map[string]any); p["role"] != "rider" || p["trip"] != "a-1" {
		t.Errorf("the rider's payload: %v", p)
	}
}

// The token endpoint takes a form with a role and a short trip ID, from
// the page's own origin, by POST only.
func TestTokenRefusals(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler(web.Config{DevKey: devKey}))
	t.Cleanup(srv.Close)
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, method, ctype, body string
		header                    [2]string
		status                    int
	}{
		{"no trip", "POST", form, "role=rider", [2]string{}, 400},
		{"a capital", "POST", form, "role=rider&trip=A", [2]string{}, 400},
		{"a slash", "POST", form, "role=rider&trip=a/b", [2]string{}, 400},
		{"a template", "POST", form, "role=rider&trip={x}", [2]string{}, 400},
		{"33 characters", "POST", form, "role=rider&trip=" + strings.Repeat("a", 33), [2]string{}, 400},
		{"another role", "POST", form, "role=admin&trip=a", [2]string{}, 400},
		{"JSON", "POST", "application/json", `{"role":"rider","trip":"a"}`, [2]string{}, 415},
		{"GET", "GET", "", "", [2]string{}, 405},
		{"from another site", "POST", form, "role=rider&trip=a", [2]string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"from another origin", "POST", form, "role=rider&trip=a", [2]string{"Origin", "https://evil.example"}, 403},
		{"32 characters", "POST", form, "role=rider&trip=" + strings.Repeat("a", 32), [2]string{}, 200},
		{"same origin", "POST", form, "role=driver&trip=a-b-0", [2]string{"Sec-Fetch-Site", "same-origin"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := request(t, tc.method, srv.URL+"/demo/token", strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.header[0] != "" {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			resp, body := do(t, req)
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s, want %d", resp.Status, body, tc.status)
			}
			if tc.status != 200 && len(resp.Cookies()) > 0 {
				t.Errorf("a refusal set a cookie: %v", resp.Cookies())
			}
		})
	}
}

// subscribe reads the events of a subscription from the start of the
// history until one has the data last, with a cookie, and returns their
// data.
func subscribe(t *testing.T, base string, cookie *http.Cookie, last string, topics ...string) []string {
	t.Helper()
	q := url.Values{"topic": topics, "lastEventID": {"earliest"}}
	req := request(t, "GET", base+"/.well-known/mercure?"+q.Encode(), nil)
	req.AddCookie(cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("subscribing: %s %s", resp.Status, b)
	}
	var got []string
	for ev, err := range sse.NewDecoder(resp.Body).Events() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.Data)
		if ev.Data == last {
			return got
		}
	}
	t.Fatalf("the stream ended before %q: %q", last, got)
	return nil
}

// Against a real hub: a rider's token for trip a reads trip a's private
// updates and its driver's subscriptions, and nothing of trip b's; a
// driver's publishes to its trip only.
func TestTokenScopes(t *testing.T) {
	t.Parallel()
	srv := newHub(t, web.Config{DevKey: devKey})
	a, b := web.TopicBase+"a", web.TopicBase+"b"
	driverA, _, _ := mintToken(t, srv.URL, "driver", "a")
	driverB, _, _ := mintToken(t, srv.URL, "driver", "b")
	_, riderA, _ := mintToken(t, srv.URL, "rider", "a")

	pub := func(token string, form url.Values) int {
		req := request(t, "POST", srv.URL+hub.Path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, body := do(t, req)
		if resp.StatusCode != 200 && resp.StatusCode != 403 {
			t.Fatalf("publishing: %s %s", resp.Status, body)
		}
		return resp.StatusCode
	}
	if s := pub(driverA.Token, url.Values{"topic": {b}, "data": {"a's driver on b"}, "private": {"on"}}); s != 403 {
		t.Errorf("a's driver publishing to trip b: %d, want 403", s)
	}
	if s := pub(driverA.Token, url.Values{"topic": {a, b}, "data": {"a's driver on a and b"}, "private": {"on"}}); s != 403 {
		t.Errorf("a's driver publishing to trips a and b: %d, want 403", s)
	}
	pub(driverB.Token, url.Values{"topic": {b}, "data": {"private b"}, "private": {"on"}})
	pub(driverA.Token, url.Values{"topic": {a}, "data": {"private a"}, "private": {"on"}})
	pub(driverB.Token, url.Values{"topic": {b}, "data": {"public b"}})
	if got := subscribe(t, srv.URL, riderA, "public b", a, b); !slices.Equal(got, []string{"private a", "public b"}) {
		t.Errorf("a's rider, subscribed to trips a and b, got %q; want a's private update and b's public one", got)
	}
	if got := subscribe(t, srv.URL, riderA, "public b", "*"); !slices.Equal(got, []string{"private a", "public b"}) {
		t.Errorf("a's rider, subscribed to every topic, got %q; want a's private update and b's public one", got)
	}

	// The subscriptions API: the driver topic of trip a, and nothing else.
	for _, tc := range []struct {
		path   string
		status int
	}{
		{driverA.Presence, 200},
		{driverB.Presence, 403},
		{"/.well-known/mercure/subscriptions", 403},
		{"/.well-known/mercure/subscriptions/" + url.QueryEscape(a), 403},
	} {
		req := request(t, "GET", srv.URL+tc.path, nil)
		req.AddCookie(riderA)
		if resp, body := do(t, req); resp.StatusCode != tc.status {
			t.Errorf("a's rider, GET %s: %s %s, want %d", tc.path, resp.Status, body, tc.status)
		}
	}
}
