package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/hub"
)

// What publish and subscribe share: the hub's URL, and the token or key
// that authenticates with it.

// defaultHubURL is where herald serve listens by default.
const defaultHubURL = "http://localhost:8080" + hub.Path

type hubFlags struct {
	hub   string
	token string
	keys  keyFlags
}

func (h *hubFlags) register(fs *flag.FlagSet, what string, r role) {
	fs.StringVar(&h.hub, "hub", "", "the hub's `URL` (default: $HERALD_HUB_URL, else "+defaultHubURL+"); a URL without a path gets "+hub.Path)
	fs.StringVar(&h.token, "token", "", "the `JWT` to present (default: $HERALD_TOKEN)")
	h.keys.register(fs, "a token for "+what, r)
}

// defaults fills in what the flags left to the environment.
func (h *hubFlags) defaults(e *env) {
	if h.hub == "" {
		h.hub = cmpOr(envValue(e, "HERALD_HUB_URL"), defaultHubURL)
	}
	if h.token == "" && h.keys.key == "" && h.keys.keyFile == "" {
		h.token = envValue(e, "HERALD_TOKEN")
	}
}

func envValue(e *env, name string) string {
	v, _ := e.lookupEnv(name)
	return v
}

// hubURL checks a hub's URL and gives a bare one the hub's path.
func hubURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("%q is not a hub URL: want http:// or https://, such as %s", raw, defaultHubURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = hub.Path
	}
	return u, nil
}

// authorization returns the token to send: -token, or one signed with
// the key for the grant, valid for ttl (0: no expiry); "" when there is
// neither.
func (h *hubFlags) authorization(e *env, r role, g grant, ttl time.Duration) (string, error) {
	if h.token != "" {
		if h.keys.key != "" || h.keys.keyFile != "" {
			return "", usagef("-token and -key: pass one")
		}
		return h.token, nil
	}
	s, err := h.keys.signer(e, r)
	if err != nil || s == nil {
		return "", err
	}
	return s.sign(g, ttl, time.Now())
}

// reachError explains a failure to reach a server, with what to do about
// it if hint is set.
func reachError(target string, err error, hint bool) error {
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s in time", target)
	case errors.Is(err, syscall.ECONNREFUSED) && hint:
		return fmt.Errorf("cannot reach %s: connection refused; is the hub running? Start one with 'herald serve', or point -hub at it", target)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach %s: connection refused", target)
	case errors.As(err, &dns):
		return fmt.Errorf("cannot reach %s: unknown host %q", target, dns.Name)
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &cert):
		return fmt.Errorf("cannot reach %s: its TLS certificate is not trusted: %v", target, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("cannot reach %s: %v", target, err)
}

// refusal explains a hub's refusal, with a hint at the usual cause.
func refusal(what string, he *client.HubError, r role) error {
	var b strings.Builder
	fmt.Fprintf(&b, "the hub refused %s: %s", what, he.Status)
	if he.Code != "" {
		fmt.Fprintf(&b, " (%s)", he.Code)
	}
	if he.Message != "" {
		b.WriteString(": " + he.Message)
	}
	keyEnv := "HERALD_PUBLISHER_JWT_KEY"
	claim := "mercure.publish"
	if r == subscriberRole {
		keyEnv, claim = "HERALD_SUBSCRIBER_JWT_KEY", "mercure.subscribe"
	}
	switch {
	case he.Code == "missing_token" || he.StatusCode == 401 && he.Code == "":
		fmt.Fprintf(&b, "\nPass a token with -token, or the hub's key with -key (or set %s) to sign one.", keyEnv)
	case he.Code == "invalid_token":
		b.WriteString("\nCheck that the token is signed with the hub's key and algorithm, and has not expired.")
	case he.Code == "forbidden":
		fmt.Fprintf(&b, "\nThe token's %s claim must cover the topics.", claim)
	case he.StatusCode == 404 || he.StatusCode == 405:
		fmt.Fprintf(&b, "\nIs -hub the hub's URL? A Mercure hub answers at %s.", hub.Path)
	}
	return errors.New(b.String())
}
