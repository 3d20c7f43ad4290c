package hub

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Key verifies the signature of JSON Web Tokens. Build one with NewKey. It
// remembers the tokens it verified, so that a client that presents the
// same token again (a publisher, typically, on every publication) is not
// verified again; their expiry is still checked at each use.
type Key struct {
	alg      string
	key      any
	verified cache[string, *claims]
}

// Bounds on the cache of verified tokens: its entries, and the length of a
// token worth remembering (a larger one is verified each time, so that the
// cache stays small whatever clients send).
const (
	verifiedCacheSize = 4096
	maxCachedToken    = 2048
)

// NewKey returns a Key for the algorithm alg: HS256, HS384 or HS512 with a
// shared secret; RS256, RS384, RS512, PS256, PS384 or PS512 with an RSA
// public key; ES256, ES384 or ES512 with an ECDSA public key; EdDSA with an
// Ed25519 public key. A public key is PEM-encoded, as a PKIX public key, a
// PKCS #1 RSA public key or a certificate. An empty alg means HS256.
func NewKey(alg string, material []byte) (*Key, error) {
	if alg == "" {
		alg = "HS256"
	}
	if len(material) == 0 {
		return nil, fmt.Errorf("hub: key for %s: empty", alg)
	}
	switch alg {
	case "HS256", "HS384", "HS512":
		return &Key{alg: alg, key: material, verified: newCache[string, *claims](verifiedCacheSize)}, nil
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
	default:
		return nil, fmt.Errorf("hub: unsupported signing algorithm %q", alg)
	}
	pub, err := parsePublicKey(material)
	if err != nil {
		return nil, fmt.Errorf("hub: key for %s: %w", alg, err)
	}
	var fits bool
	switch pub.(type) {
	case *rsa.PublicKey:
		fits = alg[0] == 'R' || alg[0] == 'P'
	case *ecdsa.PublicKey:
		fits = alg[0] == 'E' && alg != "EdDSA"
	case ed25519.PublicKey:
		fits = alg == "EdDSA"
	}
	if !fits {
		return nil, fmt.Errorf("hub: key for %s: a %T does not fit the algorithm", alg, pub)
	}
	return &Key{alg: alg, key: pub, verified: newCache[string, *claims](verifiedCacheSize)}, nil
}

func parsePublicKey(material []byte) (any, error) {
	block, _ := pem.Decode(material)
	if block == nil {
		return nil, errors.New("not PEM-encoded")
	}
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return x509.ParsePKIXPublicKey(block.Bytes)
	}
}

// Alg returns the key's signing algorithm.
func (k *Key) Alg() string { return k.alg }

// maxTokenLength bounds a token: each one is parsed and verified.
const maxTokenLength = 16 << 10

// claims are the Mercure claims of a verified token.
type claims struct {
	Publish   []string        `json:"publish"`
	Subscribe []string        `json:"subscribe"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	expires   time.Time       // zero: the token does not expire
	notBefore time.Time       // zero: valid from the start
}

// tokenClaims is a token's claims set as it is decoded: the Mercure claims
// under "mercure", or under the namespaced key some identity providers
// require.
type tokenClaims struct {
	Mercure    *claims `json:"mercure"`
	Namespaced *claims `json:"https://mercure.rocks/"`
	jwt.RegisteredClaims
}

// verify checks a token's signature and time claims with key and returns
// its Mercure claims, empty when it has none.
func verify(key *Key, token string) (*claims, error) {
	if len(token) > maxTokenLength {
		return nil, fmt.Errorf("the token is longer than %d bytes", maxTokenLength)
	}
	if c, ok := key.verified.get(token); ok {
		if now := time.Now(); !c.notBefore.IsZero() && now.Before(c.notBefore.Add(-leeway)) ||
			!c.expires.IsZero() && !now.Before(c.expires.Add(leeway)) {
			return nil, errors.New("token is expired or not valid yet")
		}
		return c, nil
	}
	c, err := parse(key, token)
	if err == nil && len(token) <= maxCachedToken {
		key.verified.put(token, c)
	}
	return c, err
}

// leeway is the clock skew tolerated on a token's exp and nbf.
const leeway = 5 * time.Second

func parse(key *Key, token string) (*claims, error) {
	var tc tokenClaims
	_, err := jwt.ParseWithClaims(token, &tc, func(*jwt.Token) (any, error) { return key.key, nil },
		jwt.WithValidMethods([]string{key.alg}), jwt.WithLeeway(leeway))
	if err != nil {
		return nil, err
	}
	c := tc.Mercure
	if c == nil {
		c = tc.Namespaced
	}
	if c == nil {
		c = &claims{}
	}
	if tc.ExpiresAt != nil {
		c.expires = tc.ExpiresAt.Time
	}
	if tc.NotBefore != nil {
		c.notBefore = tc.NotBefore.Time
	}
	return c, nil
}

// tokenSource says where a request's token came from.
type tokenSource uint8

const (
	noToken tokenSource = iota
	fromHeader
	fromQuery
	fromCookie
)

// requestToken returns the request's token: from the Authorization header
// (Bearer), else the authorization query parameter, else the cookie.
func requestToken(r *http.Request, cookieName string) (string, tokenSource, error) {
	if hs := r.Header.Values("Authorization"); len(hs) > 0 {
		if len(hs) > 1 {
			return "", fromHeader, errors.New("the request has more than one Authorization header")
		}
		scheme, token, ok := strings.Cut(hs[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return "", fromHeader, errors.New(`the Authorization header is not "Bearer <token>"`)
		}
		return strings.TrimSpace(token), fromHeader, nil
	}
	if q := r.URL.Query()["authorization"]; len(q) > 0 {
		return q[0], fromQuery, nil
	}
	if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
		return c.Value, fromCookie, nil
	}
	return "", noToken, nil
}

// authenticate returns the claims of the request's token, verified with
// key, and where the token came from. A request without a token gets nil
// claims; a token that fails verification is an error (401), never
// anonymous access.
func (h *Hub) authenticate(r *http.Request, key *Key) (*claims, tokenSource, error) {
	token, src, err := requestToken(r, h.cfg.CookieName)
	c, e := h.verifyToken(key, token, src, err)
	if e != nil {
		return nil, src, e
	}
	return c, src, nil
}

// verifyToken returns the claims of a request's token, as requestToken
// returned it (token, src, err), verified with key: nil claims without a
// token, a 401 refusal when the token is malformed or fails verification.
func (h *Hub) verifyToken(key *Key, token string, src tokenSource, err error) (*claims, *Error) {
	if err != nil {
		return nil, &Error{Status: http.StatusUnauthorized, Code: codeInvalidToken, Message: err.Error()}
	}
	if src == noToken {
		return nil, nil
	}
	if key == nil {
		return nil, &Error{Status: http.StatusUnauthorized, Code: codeInvalidToken, Message: "the hub has no key to verify this token with"}
	}
	c, err := h.verify(key, token)
	if err != nil {
		return nil, &Error{Status: http.StatusUnauthorized, Code: codeInvalidToken, Message: "invalid token: " + err.Error(), err: err}
	}
	return c, nil
}

// verify verifies a token as verify does, and refuses one with a claim
// that holds more selectors than the hub allows. (The claims of a token
// are remembered by its key, which hubs with other bounds may share.)
func (h *Hub) verify(key *Key, token string) (*claims, error) {
	c, err := verify(key, token)
	if err != nil {
		return nil, err
	}
	if n := max(len(c.Publish), len(c.Subscribe)); n > h.cfg.MaxClaimSelectors {
		return nil, fmt.Errorf("a claim of the token has %d selectors, more than the %d the hub allows (max-claim-selectors)", n, h.cfg.MaxClaimSelectors)
	}
	return c, nil
}

// requestOrigin returns the origin of a request: its Origin header, or
// else the origin of its Referer, or else "".
func requestOrigin(r *http.Request) string {
	if origin := r.Header.Get("Origin"); origin != "" {
		return origin
	}
	if ref, err := url.Parse(r.Header.Get("Referer")); err == nil && ref.Scheme != "" && ref.Host != "" {
		return ref.Scheme + "://" + ref.Host
	}
	return ""
}

// checkOrigin enforces the publish origins on a request authorized by a
// cookie: its origin (requestOrigin) must be listed.
func (h *Hub) checkOrigin(origin string) *Error {
	if origin == "" {
		return &Error{Status: http.StatusForbidden, Code: codeBadOrigin, Message: "a publish authorized by a cookie needs an Origin or Referer header"}
	}
	if !slices.Contains(h.cfg.PublishOrigins, "*") && !slices.Contains(h.cfg.PublishOrigins, origin) {
		return &Error{Status: http.StatusForbidden, Code: codeBadOrigin, Message: fmt.Sprintf("origin %q may not publish with a cookie", origin)}
	}
	return nil
}
