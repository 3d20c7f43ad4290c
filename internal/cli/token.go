package cli

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signer signs tokens: an algorithm and its key, a shared secret for HS*,
// a private key otherwise.
type signer struct {
	method jwt.SigningMethod
	key    any
}

// algorithms lists the signing algorithms, as hub.NewKey does.
const algorithms = "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA"

// newSigner returns the signer of alg with the key material: the secret
// itself for HS*, a PEM-encoded private key (PKCS #8, PKCS #1 or SEC 1)
// otherwise.
func newSigner(alg string, material []byte) (*signer, error) {
	if alg == "" {
		alg = "HS256"
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil || alg == "none" {
		return nil, fmt.Errorf("unknown signing algorithm %q: want %s", alg, algorithms)
	}
	if len(material) == 0 {
		return nil, errors.New("the key is empty")
	}
	if strings.HasPrefix(alg, "HS") {
		if strings.Contains(string(material), "-----BEGIN") {
			return nil, fmt.Errorf("%s takes a shared secret, not a PEM key: pass -alg with the key's algorithm (RS256, ES256, EdDSA, …)", alg)
		}
		return &signer{method, material}, nil
	}
	key, err := parsePrivateKey(material)
	if err != nil {
		return nil, fmt.Errorf("key for %s: %w", alg, err)
	}
	var fits bool
	switch key.(type) {
	case *rsa.PrivateKey:
		fits = alg[0] == 'R' || alg[0] == 'P'
	case *ecdsa.PrivateKey:
		fits = alg[0] == 'E' && alg != "EdDSA"
	case ed25519.PrivateKey:
		fits = alg == "EdDSA"
	}
	if !fits {
		return nil, fmt.Errorf("key for %s: %s does not fit the algorithm", alg, keyKind(key))
	}
	return &signer{method, key}, nil
}

func keyKind(key any) string {
	switch key.(type) {
	case *rsa.PrivateKey:
		return "an RSA key"
	case *ecdsa.PrivateKey:
		return "an ECDSA key"
	case ed25519.PrivateKey:
		return "an Ed25519 key"
	}
	return fmt.Sprintf("a %T", key)
}

func parsePrivateKey(material []byte) (any, error) {
	block, _ := pem.Decode(material)
	if block == nil {
		return nil, errors.New("not a PEM-encoded private key")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, errors.New("this is a public key, which verifies tokens; signing one takes the private key")
	}
	return nil, fmt.Errorf("a PEM block of type %q, not a private key", block.Type)
}

// grant is what a token allows: the mercure claim.
type grant struct {
	Publish   []string        `json:"publish,omitempty"`
	Subscribe []string        `json:"subscribe,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// sign returns a token with the grant, valid for ttl from now (forever
// when ttl is 0).
func (s *signer) sign(g grant, ttl time.Duration, now time.Time) (string, error) {
	claims := jwt.MapClaims{"mercure": g, "iat": now.Unix()}
	if ttl > 0 {
		claims["exp"] = now.Add(ttl).Unix()
	}
	return jwt.NewWithClaims(s.method, claims).SignedString(s.key)
}

// mint signs an HS256 token for the Mercure claims, for herald bench.
func mint(key string, publish, subscribe []string) (string, error) {
	s, err := newSigner("HS256", []byte(key))
	if err != nil {
		return "", err
	}
	return s.sign(grant{Publish: publish, Subscribe: subscribe}, 0, time.Now())
}

// keyFlags are the flags that choose a signing key, shared by the
// commands that sign tokens.
type keyFlags struct {
	key, keyFile, alg string
}

func (k *keyFlags) register(fs *flag.FlagSet, what string, r role) {
	env := "$HERALD_PUBLISHER_JWT_KEY"
	if r == subscriberRole {
		env = "$HERALD_SUBSCRIBER_JWT_KEY, else $HERALD_PUBLISHER_JWT_KEY"
	}
	fs.StringVar(&k.key, "key", "", "the `secret` (HS*) or PEM private key to sign "+what+" with (default: "+env+")")
	fs.StringVar(&k.keyFile, "key-file", "", "read the key from this `file` instead")
	fs.StringVar(&k.alg, "alg", "", "the signing `algorithm`: "+algorithms+" (default: the environment's, else HS256)")
}

// role is whose key signs: the publisher's or the subscriber's, as the
// hub's configuration names them.
type role int

const (
	publisherRole role = iota
	subscriberRole
)

// signer returns the signer the flags choose, or, without -key or
// -key-file, the key the hub's environment variables hold for the role;
// nil when there is none.
func (k *keyFlags) signer(e *env, r role) (*signer, error) {
	material, alg := k.key, k.alg
	switch {
	case k.key != "" && k.keyFile != "":
		return nil, usagef("-key and -key-file: pass one")
	case k.keyFile != "":
		b, err := os.ReadFile(k.keyFile)
		if err != nil {
			return nil, fmt.Errorf("read the key: %w", err)
		}
		material = strings.TrimRight(string(b), "\r\n")
		if strings.Contains(material, "-----BEGIN") {
			material = string(b)
		}
	case k.key == "":
		material, alg = k.envKey(e, r)
		if material == "" {
			return nil, nil
		}
	}
	s, err := newSigner(alg, []byte(material))
	if err != nil {
		return nil, usagef("%v", err)
	}
	return s, nil
}

// envKey reads the hub's key for the role from the environment, with the
// same names and fallbacks as herald serve.
func (k *keyFlags) envKey(e *env, r role) (key, alg string) {
	first := func(names ...string) string {
		for _, n := range names {
			if v, ok := e.lookupEnv(n); ok && v != "" {
				return v
			}
		}
		return ""
	}
	pubKey := first("HERALD_PUBLISHER_JWT_KEY", "MERCURE_PUBLISHER_JWT_KEY")
	pubAlg := first("HERALD_PUBLISHER_JWT_ALG", "MERCURE_PUBLISHER_JWT_ALG")
	key, alg = pubKey, pubAlg
	if r == subscriberRole {
		if subKey := first("HERALD_SUBSCRIBER_JWT_KEY", "MERCURE_SUBSCRIBER_JWT_KEY"); subKey != "" {
			key = subKey
			alg = cmpOr(first("HERALD_SUBSCRIBER_JWT_ALG", "MERCURE_SUBSCRIBER_JWT_ALG"), pubAlg)
		}
	}
	if k.alg != "" {
		alg = k.alg
	}
	return key, alg
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// stringsFlag is a flag that may be repeated.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ", ") }
func (s *stringsFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

const tokenSynopsis = `[-publish selector]… [-subscribe selector]… [-key secret | -key-file file] [flags]

Prints a JSON Web Token for a Mercure hub: its mercure claim lists the topic
selectors (exact topics, URI templates, or *) the bearer may publish to and
subscribe to. The key is the hub's: its publisher key for a publisher's
token, its subscriber key for a subscriber's.

Flags:`

func runToken(e *env, args []string) error {
	fs := newFlags(e, "token", tokenSynopsis)
	var g grant
	var publish, subscribe stringsFlag
	fs.Var(&publish, "publish", "a topic `selector` the token may publish to; repeat for more")
	fs.Var(&subscribe, "subscribe", "a topic `selector` the token may subscribe to (private updates included); repeat for more")
	payload := fs.String("payload", "", "a JSON `value` for the mercure.payload claim, which the hub shares with the subscriptions API")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid (a `duration`); 0 for no expiry")
	var keys keyFlags
	keys.register(fs, "the token", publisherRole)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %q", fs.Args())
	}
	if len(publish) == 0 && len(subscribe) == 0 {
		return usagef("a token with neither -publish nor -subscribe allows nothing")
	}
	if *ttl < 0 {
		return usagef("-ttl %v: negative", *ttl)
	}
	g.Publish, g.Subscribe = publish, subscribe
	if *payload != "" {
		if !json.Valid([]byte(*payload)) {
			return usagef("-payload is not valid JSON: %q", *payload)
		}
		g.Payload = json.RawMessage(*payload)
	}
	r := publisherRole
	if len(publish) == 0 {
		r = subscriberRole
	}
	s, err := keys.signer(e, r)
	if err != nil {
		return err
	}
	if s == nil {
		return usagef("no key: pass -key (or -key-file) with the hub's key, or set HERALD_PUBLISHER_JWT_KEY")
	}
	tok, err := s.sign(g, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, tok)
	return err
}
