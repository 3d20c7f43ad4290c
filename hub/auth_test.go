package hub_test

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
)

// TestPublishRefusals sends every malformed or unauthorized publication
// both ways a hub takes one: to net/http and the hub's handler, and to
// Serve, whose fast path checks a plain publication itself. Both must
// answer alike, byte for byte but the date, and with the row's status and
// error code. The rows marked plain are plain publications, which Serve's
// fast path decides; the others Serve hands to net/http as they are.
func TestPublishRefusals(t *testing.T) {
	t.Parallel()
	s := newServed(t, hub.Config{MaxBodySize: 2 << 10, MaxTopics: 3, MaxClaimSelectors: 4,
		PublishOrigins: []string{"https://app.example.com"}}, nil)
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		t.Helper()
		if claims == nil {
			claims = jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}}
		}
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := publisherToken(t)
	otherKey := sign(jwt.SigningMethodHS256, []byte("another key, not the hub's"), nil)
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil)
	hs384 := sign(jwt.SigningMethodHS384, testKey, nil) // the hub's secret, another algorithm
	expired := token(t, []string{"*"}, nil, time.Now().Add(-time.Hour))
	notYet := sign(jwt.SigningMethodHS256, testKey, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}},
		"nbf": time.Now().Add(time.Hour).Unix()})
	tooWide := token(t, []string{"a", "b", "c", "d", "e"}, nil, time.Time{}) // past MaxClaimSelectors
	subscriber := token(t, nil, []string{"*"}, time.Time{})
	narrow := token(t, []string{"https://example.com/a/{id}"}, nil, time.Time{})
	if got := exchange(t, s.plain, postRequest(formType+"Authorization: Bearer "+good+"\r\n", "topic=t&id=taken-id")); !strings.HasPrefix(got[0], "HTTP/1.1 200 ") {
		t.Fatalf("publishing taken-id: %q", got[0])
	}

	// with returns the headers of a publication with the form's type and
	// the token.
	with := func(tok string) string { return formType + "Authorization: Bearer " + tok + "\r\n" }
	tests := []struct {
		name    string
		headers string // the request's, but Host and Content-Length
		body    string
		plain   bool
		status  int
		code    string
	}{
		// The token.
		{"no token", formType, "topic=a", false, 401, "missing_token"},
		{"token signed with another key", with(otherKey), "topic=a", true, 401, "invalid_token"},
		{"alg none", with(none), "topic=a", true, 401, "invalid_token"},
		{"another algorithm than the key's", with(hs384), "topic=a", true, 401, "invalid_token"},
		{"expired token", with(expired), "topic=a", true, 401, "invalid_token"},
		{"token not valid yet", with(notYet), "topic=a", true, 401, "invalid_token"},
		{"garbage token", with("not.a.token"), "topic=a", true, 401, "invalid_token"},
		{"token with too many selectors", with(tooWide), "topic=a", true, 401, "invalid_token"},
		{"token longer than the hub reads", with(strings.Repeat("x", 17<<10)), "topic=a", false, 401, "invalid_token"},
		{"not Bearer", formType + "Authorization: Basic dTpw\r\n", "topic=a", false, 401, "invalid_token"},
		{"empty Bearer", formType + "Authorization: Bearer \r\n", "topic=a", false, 401, "invalid_token"},
		{"two tokens", with(good) + "Authorization: Bearer " + good + "\r\n", "topic=a", false, 401, "invalid_token"},
		{"cookie with an invalid token", formType + "Cookie: mercureAuthorization=" + otherKey + "\r\nOrigin: https://app.example.com\r\n", "topic=a", false, 401, "invalid_token"},
		{"cookie without an origin", formType + "Cookie: mercureAuthorization=" + good + "\r\n", "topic=a", false, 403, "origin_not_allowed"},
		{"cookie from another origin", formType + "Cookie: mercureAuthorization=" + good + "\r\nOrigin: https://evil.example.com\r\n", "topic=a", false, 403, "origin_not_allowed"},
		{"cookie from another referer", formType + "Cookie: mercureAuthorization=" + good + "\r\nReferer: https://evil.example.com/page\r\n", "topic=a", false, 403, "origin_not_allowed"},

		// The claim's cover.
		{"no publish claim", with(subscriber), "topic=a", true, 403, "forbidden"},
		{"topic outside the claim", with(narrow), "topic=https://example.com/b", true, 403, "forbidden"},
		{"one topic of two outside the claim", with(narrow), "topic=https://example.com/a/1&topic=https://example.com/b", true, 403, "forbidden"},
		{"private outside the claim", with(narrow), "topic=https://example.com/b&private=on", true, 403, "forbidden"},
		{"end outside the claim", with(narrow), "topic=https://example.com/b&end=on", true, 403, "forbidden"},
		{"reserved topic outside the claim", with(narrow), "topic=https://example.com/.well-known/mercure/subscriptions/x/y", true, 403, "forbidden"},

		// The media type and the body.
		{"JSON", "Content-Type: application/json\r\nAuthorization: Bearer " + good + "\r\n", `{"topic":"a"}`, false, 415, "unsupported_media_type"},
		{"no media type", "Authorization: Bearer " + good + "\r\n", "topic=a", false, 415, "unsupported_media_type"},
		{"malformed media type", "Content-Type: application/x-www-form-urlencoded;;\r\nAuthorization: Bearer " + good + "\r\n", "topic=a", false, 415, "unsupported_media_type"},
		{"body too large", with(good), "topic=a&data=" + strings.Repeat("x", 2<<10), true, 413, "body_too_large"},
		{"body too large for the fast path", with(good), "topic=a&data=" + strings.Repeat("x", 5<<10), false, 413, "body_too_large"},
		{"bad escape", with(good), "topic=%zz", true, 400, "invalid_body"},
		{"bad escape in a name", with(good), "top%zzic=a", true, 400, "invalid_body"},
		{"semicolon", with(good), "topic=a;data=x", true, 400, "invalid_body"},

		// The update.
		{"missing topic", with(good), "data=x", true, 400, "missing_topic"},
		{"too many topics", with(good), "topic=a&topic=b&topic=c&topic=d", true, 400, "too_many_topics"},
		{"far too many topics", with(good), strings.Repeat("topic=a&", 100), true, 400, "too_many_topics"},
		{"empty topic", with(good), "topic=", true, 400, "invalid_topic"},
		{"topic not UTF-8", with(good), "topic=%FF", true, 400, "invalid_topic"},
		{"reserved topic", with(good), "topic=https://example.com/.well-known/mercure/subscriptions/x/y", true, 403, "reserved_topic"},
		{"LF in id", with(good), "topic=a&id=a%0Ab", true, 400, "invalid_id"},
		{"CR in id", with(good), "topic=a&id=a%0Db", true, 400, "invalid_id"},
		{"NUL in id", with(good), "topic=a&id=a%00b", true, 400, "invalid_id"},
		{"id starting with #", with(good), "topic=a&id=%231", true, 400, "invalid_id"},
		{"id earliest", with(good), "topic=a&id=earliest", true, 400, "invalid_id"},
		{"id too long", with(good), "topic=a&id=" + strings.Repeat("i", hub.MaxIDLength+1), true, 400, "invalid_id"},
		{"id not UTF-8", with(good), "topic=a&id=%FF", true, 400, "invalid_id"},
		{"duplicate id", with(good), "topic=a&id=taken-id", true, 409, "duplicate_id"},
		{"LF in type", with(good), "topic=a&type=a%0Ab", true, 400, "invalid_type"},
		{"CR in type", with(good), "topic=a&type=a%0Db", true, 400, "invalid_type"},
		{"NUL in type", with(good), "topic=a&type=%00", true, 400, "invalid_type"},
		{"type too long", with(good), "topic=a&type=" + strings.Repeat("t", hub.MaxTypeLength+1), true, 400, "invalid_type"},
		{"non-numeric retry", with(good), "topic=a&retry=soon", true, 400, "invalid_retry"},
		{"negative retry", with(good), "topic=a&retry=-1", true, 400, "invalid_retry"},
		{"retry past 32 bits", with(good), "topic=a&retry=4294967296", true, 400, "invalid_retry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := postRequest(tc.headers, tc.body)
			if plain := hub.IsPlain([]byte(req)); plain != tc.plain {
				t.Fatalf("a plain publication: %v, want %v", plain, tc.plain)
			}
			handler := exchange(t, s.plain, req)[0]
			fast := exchange(t, s.fast, req)[0]
			if fast != handler {
				t.Errorf("Serve answered\n%s\nnet/http answered\n%s", fast, handler)
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(handler)), nil)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Error, Message string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body: %v", err)
			}
			if resp.StatusCode != tc.status || body.Error != tc.code || body.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without a WWW-Authenticate challenge")
			}
		})
	}
}

// A hub shutting down refuses a publication, whichever way it comes:
// Serve's fast path leaves it to the handler, which answers 503. (Serve
// itself stops with the hub, so TestPublishRefusals cannot send it.)
func TestPublishRefusedWhileShuttingDown(t *testing.T) {
	t.Parallel()
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, hub.Config{PublisherKey: key})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	body := "topic=a&data=x"
	req := postRequest(formType+"Authorization: Bearer "+publisherToken(t)+"\r\n", body)
	var out []byte
	if !hub.IsPlain([]byte(req)) || hub.AnswerPlain(h, []byte(req), &out) {
		t.Fatalf("the fast path answered %q", out)
	}
	r := httptest.NewRequest(http.MethodPost, hub.Path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Bearer "+publisherToken(t))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"unavailable"`) {
		t.Fatalf("the handler answered %d %s", w.Code, w.Body)
	}
}

func TestSubscribeRefusals(t *testing.T) {
	t.Parallel()
	key, _ := hub.NewKey("HS256", testKey)
	closed := newTestHub(t, hub.Config{SubscriberKey: key, MaxSelectors: 2}) // no anonymous subscribers
	open := newTestHub(t, hub.Config{MaxSelectors: 2})
	otherKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{}).SignedString([]byte("another key, not the hub's"))
	tests := []struct {
		name   string
		th     *testHub
		query  string
		header http.Header
		status int
	}{
		{"missing topic", open, "", nil, 400},
		{"too many selectors", open, q("topic", "a", "topic", "b", "topic", "c"), nil, 400},
		{"empty topic", open, q("topic", ""), nil, 400},
		{"anonymous when not allowed", closed, q("topic", "a"), nil, 401},
		{"invalid token", open, q("topic", "a"), bearer(otherKey), 401},
		{"invalid token in the query", open, q("topic", "a", "authorization", otherKey), nil, 401},
		{"expired token", closed, q("topic", "a"), bearer(token(t, nil, []string{"*"}, time.Now().Add(-time.Hour))), 401},
		{"malformed Authorization", open, q("topic", "a"), header("Authorization", "Basic dXNlcjpwYXNz"), 401},
		{"two Authorization headers", open, q("topic", "a"), header("Authorization", "Bearer a", "Authorization", "Bearer b"), 401},
		{"valid token when anonymous is not allowed", closed, q("topic", "a"), bearer(token(t, nil, []string{"a"}, time.Time{})), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, status := tc.th.open(t, tc.query, tc.header)
			if s != nil {
				s.close()
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
		})
	}
}

// A subscriber refused for want of a token where anonymous subscribers are
// not allowed is told so, and how an operator would allow them; the code
// stays missing_token.
func TestAnonymousRefusalSaysWhy(t *testing.T) {
	t.Parallel()
	key, _ := hub.NewKey("HS256", testKey)
	th := newTestHub(t, hub.Config{SubscriberKey: key})
	resp, err := http.Get(th.url + "?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || body.Error != "missing_token" {
		t.Fatalf("%d %+v, want 401 missing_token", resp.StatusCode, body)
	}
	for _, want := range []string{"does not allow anonymous subscribers", "-anonymous", "anonymous in MERCURE_EXTRA_DIRECTIVES"} {
		if !strings.Contains(body.Message, want) {
			t.Errorf("message %q does not say %q", body.Message, want)
		}
	}
}

func TestPrivateUpdates(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	anon := th.subscribe(t, q("topic", "https://example.com/books/{id}", "topic", "sentinel"), nil)
	reader := th.subscribe(t, q("topic", "https://example.com/books/{id}", "topic", "sentinel"),
		bearer(token(t, nil, []string{"https://example.com/books/1"}, time.Time{})))
	templated := th.subscribe(t, q("topic", "https://example.com/books/{id}", "topic", "sentinel"),
		bearer(token(t, nil, []string{"https://example.com/books/{id}"}, time.Time{})))
	viaQuery := th.subscribe(t, q("topic", "https://example.com/books/{id}", "topic", "sentinel",
		"authorization", token(t, nil, []string{"*"}, time.Time{})), nil)
	viaCookie := th.subscribe(t, q("topic", "https://example.com/books/{id}", "topic", "sentinel"),
		header("Cookie", "mercureAuthorization="+token(t, nil, []string{"https://example.com/books/2"}, time.Time{})))

	th.publish(t, "https://example.com/books/1", "private 1", "private", "on")
	th.publish(t, "https://example.com/books/2", "private 2", "private", "")
	th.publish(t, "sentinel", "end")

	for _, c := range []struct {
		name string
		s    *stream
		want []string
	}{
		{"anonymous", anon, []string{"end"}},
		{"allowed books/1", reader, []string{"private 1", "end"}},
		{"allowed by a template", templated, []string{"private 1", "private 2", "end"}},
		{"token in the query", viaQuery, []string{"private 1", "private 2", "end"}},
		{"token in a cookie", viaCookie, []string{"private 2", "end"}},
	} {
		for _, want := range c.want {
			if got := c.s.next(t).Data; got != want {
				t.Errorf("%s: got %q, want %q", c.name, got, want)
				break
			}
		}
	}
}

func TestPublishWithCookie(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{PublishOrigins: []string{"https://app.example.com"}})
	cookie := "mercureAuthorization=" + publisherToken(t)
	for _, c := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"allowed origin", header("Cookie", cookie, "Origin", "https://app.example.com"), 200},
		{"allowed referer", header("Cookie", cookie, "Referer", "https://app.example.com/page?x=1"), 200},
		{"other origin", header("Cookie", cookie, "Origin", "https://evil.example.com"), 403},
		{"no origin", header("Cookie", cookie), 403},
		{"bearer needs no origin", header("Authorization", "Bearer "+publisherToken(t)), 200},
	} {
		req, _ := http.NewRequest(http.MethodPost, th.url, strings.NewReader("topic=a&data=x"))
		req.Header = c.header
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if status, body := do(t, req); status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
		}
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{CORSOrigins: []string{"https://app.example.com"}})
	pre, _ := http.NewRequest(http.MethodOptions, th.url, nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	pre.Header.Set("Access-Control-Request-Headers", "authorization, last-event-id")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "last-event-id") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}

	s := th.subscribe(t, q("topic", "a"), header("Origin", "https://app.example.com"))
	if s.resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(s.resp.Header.Get("Access-Control-Expose-Headers"), "Last-Event-ID") {
		t.Fatalf("stream CORS headers: %v", s.resp.Header)
	}

	other := th.subscribe(t, q("topic", "a"), header("Origin", "https://evil.example.com"))
	if other.resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("an unlisted origin was allowed: %v", other.resp.Header)
	}
}

// Every signing algorithm the hub takes, each with a key of its own kind.
func TestAlgorithms(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	pemOf := func(pub crypto.PublicKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	tests := []struct {
		alg    string
		method jwt.SigningMethod
		sign   any
		verify []byte
	}{
		{"HS256", jwt.SigningMethodHS256, testKey, testKey},
		{"HS384", jwt.SigningMethodHS384, testKey, testKey},
		{"HS512", jwt.SigningMethodHS512, testKey, testKey},
		{"RS256", jwt.SigningMethodRS256, rsaKey, pemOf(&rsaKey.PublicKey)},
		{"RS512", jwt.SigningMethodRS512, rsaKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})},
		{"PS256", jwt.SigningMethodPS256, rsaKey, pemOf(&rsaKey.PublicKey)},
		{"ES256", jwt.SigningMethodES256, ecKey, pemOf(&ecKey.PublicKey)},
		{"ES384", jwt.SigningMethodES384, ec384, pemOf(&ec384.PublicKey)},
		{"EdDSA", jwt.SigningMethodEdDSA, edKey, pemOf(edPub)},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			t.Parallel()
			key, err := hub.NewKey(tc.alg, tc.verify)
			if err != nil {
				t.Fatal(err)
			}
			th := newTestHub(t, hub.Config{PublisherKey: key})
			claims := jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}}
			tok, err := jwt.NewWithClaims(tc.method, claims).SignedString(tc.sign)
			if err != nil {
				t.Fatal(err)
			}
			if status, body := th.post(t, url.Values{"topic": {"a"}}, tok); status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			// A token signed with HS256 using the public key as the secret
			// (the algorithm confusion attack) must fail.
			if tc.alg != "HS256" && tc.alg[:2] != "HS" {
				forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(tc.verify)
				if status, _ := th.post(t, url.Values{"topic": {"a"}}, forged); status != 401 {
					t.Fatalf("an HS256 token signed with the public key got %d", status)
				}
			}
		})
	}
}

func TestNewKeyRefusals(t *testing.T) {
	t.Parallel()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, c := range []struct {
		alg string
		key []byte
	}{
		{"HS256", nil},
		{"none", []byte("x")},
		{"RS256", []byte("not PEM")},
		{"RS256", ecPEM}, // an EC key for an RSA algorithm
		{"EdDSA", ecPEM},
	} {
		if _, err := hub.NewKey(c.alg, c.key); err == nil {
			t.Errorf("NewKey(%s, %.20q) accepted", c.alg, c.key)
		}
	}
}

// The namespaced claim some identity providers require works as well.
func TestNamespacedClaim(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"https://mercure.rocks/": map[string]any{"publish": []string{"a"}},
	}).SignedString(testKey)
	if status, body := th.post(t, url.Values{"topic": {"a"}}, tok); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
}
