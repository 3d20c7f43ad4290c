// Package browser drives Debian's Chromium, headless, from Go tests, through
// chromedp. It is herald's harness for tests that need a real browser: its
// EventSource, its CORS and cookie rules, its HTTP/2, its rendering.
//
// Start with [Main] and [NewTab]. A test binary calls Main from its TestMain,
// and each test opens a tab of the binary's one shared browser:
//
//	func TestMain(m *testing.M) { browser.Main(m) }
//
//	func TestPage(t *testing.T) {
//		t.Parallel()
//		tab := browser.NewTab(t)
//		tab.Navigate(pageURL)
//		tab.WaitFor(`window.events.length === 3`, `window.events`)
//		var ids []string
//		tab.Eval(`window.events.map(e => e.id)`, &ids)
//		tab.NoProblems()
//		// A test runs in its package's directory.
//		tab.Screenshot("../../docs/screenshots/page-phone.png", browser.Phone)
//	}
//
// The shared browser starts at the first [Shared] or [NewTab] of the binary
// and stops when Main returns. Each [Tab] lives in a browser context of its
// own (an incognito profile: its own cookies, cache and connections), so that
// parallel tests share nothing but the process. A tab closes at the end of its
// test.
//
// What a Tab offers (each method fails the test when the browser does):
//
//   - [Tab.Navigate] loads a URL and waits for its load event.
//   - [Tab.Eval] evaluates a JavaScript expression (awaiting a promise) and
//     decodes its JSON value.
//   - [Tab.WaitFor] polls a JavaScript condition until it is truthy, and on
//     timeout shows a second expression's value and the problems recorded.
//   - [Tab.Problems], [Tab.NoProblems] and [Tab.WaitProblem]: what a page test
//     asserts "none" of (see [Problem]): console.error calls, exceptions nothing
//     caught, errors of the browser's own log (a request CORS refused, a
//     resource that failed to load), and requests that failed or were
//     answered with a status of 400 or more.
//   - [Tab.Requests] and [Tab.WaitRequests]: every request the page made, with
//     its type ("EventSource", "Fetch", …), its status and the protocol it went
//     over ("http/1.1", "h2"), as the browser reports them.
//   - [Tab.Screenshot] and [Tab.FullScreenshot] write a PNG of the page
//     rendered at a [Viewport] ([Phone], [Desktop]).
//   - [Tab.Context] is the tab's chromedp context, for anything else (clicks,
//     keys, cookies through CDP).
//
// Every wait is bounded by [Tab.Timeout] (30 s by default), which only a
// broken run reaches, and waits for a condition: nothing sleeps.
//
// The tests of this package check the Mercure protocol as a page's
// EventSource sees it, against herald serve run in process (hub_test.go):
// public and private updates, the cookie across origins, resumption after a
// cut connection, the end of a topic, twelve streams over HTTP/2.
//
// HTTPS: the shared browser trusts the certificate of [TestCert] (a
// self-signed certificate for 127.0.0.1, ::1 and localhost, made once per test
// binary), by the hash of its public key
// (--ignore-certificate-errors-spki-list); any other invalid certificate
// fails as it would for a user. [TestTLSConfig] serves the certificate from a
// test's own HTTPS server, and [TestCertPool] trusts it in a Go client. A browser of one's own, from [Start], trusts
// the certificates of [Options.TrustCerts], or any with
// [Options.IgnoreCertificateErrors].
//
// The browser is /usr/bin/chromium (Debian's chromium package; scripts/test.sh
// installs it), or the one named by HERALD_CHROMIUM. Without it the tests fail:
// they do not skip.
package browser

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultPath is where Debian's chromium package puts the browser.
const DefaultPath = "/usr/bin/chromium"

// Options is how [Start] launches a browser. The zero value launches
// DefaultPath trusting no certificate of its own.
type Options struct {
	// Path is the browser's executable; empty means HERALD_CHROMIUM if
	// set, else DefaultPath.
	Path string
	// TrustCerts are certificates the browser accepts for any host even
	// though no authority signed them (by their public keys' hashes). Meant
	// for test certificates.
	TrustCerts []*x509.Certificate
	// IgnoreCertificateErrors accepts every certificate. Test-only: prefer
	// TrustCerts, which keeps every other certificate checked.
	IgnoreCertificateErrors bool
}

// Browser is one headless Chromium process. Its methods are safe for
// concurrent use; Close ends the process.
type Browser struct {
	ctx       context.Context // the browser's own chromedp context
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// Start launches a headless Chromium with a fresh profile in a temporary
// directory (removed by Close), and waits until it answers. The flags are
// those a closed network and a container need: --headless --no-sandbox
// --disable-gpu --disable-quic --no-first-run --disable-background-networking
// --disable-component-update --disable-sync. Without the background-networking
// flags a machine without Internet access refuses the browser's connections.
func Start(opts Options) (*Browser, error) {
	path := opts.Path
	if path == "" {
		path = DefaultPath
		if p, ok := os.LookupEnv("HERALD_CHROMIUM"); ok && p != "" {
			path = p
		}
	}
	if _, err := exec.LookPath(path); err != nil {
		return nil, fmt.Errorf("browser: no Chromium at %s (apt-get install -y chromium, or scripts/test.sh installs it): %w", path, err)
	}
	dir, err := os.MkdirTemp("", "herald-chromium-")
	if err != nil {
		return nil, fmt.Errorf("browser: the profile directory: %w", err)
	}
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	if len(opts.TrustCerts) > 0 {
		hashes := make([]string, len(opts.TrustCerts))
		for i, c := range opts.TrustCerts {
			hashes[i] = SPKIHash(c)
		}
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(hashes, ",")))
	}
	if opts.IgnoreCertificateErrors {
		flags = append(flags, chromedp.IgnoreCertErrors)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{ctx: ctx, cancel: func() {
		cancel()
		acancel()
		os.RemoveAll(dir)
	}}
	// The first Run starts the process; bound only the wait for its answer,
	// not the context it lives in.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(60 * time.Second):
		err = errors.New("no answer within 60 s")
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("browser: starting %s: %w", path, err)
	}
	return b, nil
}

// Close ends the browser and removes its profile. It is idempotent; tabs
// still open fail from then on.
func (b *Browser) Close() error {
	b.closeOnce.Do(b.cancel)
	return nil
}

// SPKIHash is the form --ignore-certificate-errors-spki-list takes a
// certificate in: the base64 of the SHA-256 of its public key info.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

var shared struct {
	mu  sync.Mutex
	b   *Browser
	err error
}

// Main runs the tests of m and then closes the shared browser, if one
// started, and exits with the tests' code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if shared.b != nil {
		shared.b.Close()
	}
	shared.mu.Unlock()
	removeTestCert()
	os.Exit(code)
}

// Shared returns the test binary's shared browser, starting it on first use
// with the default Options trusting [TestCert]'s certificate. A browser that
// cannot start fails the test (and every later one asking for it).
func Shared(t testing.TB) *Browser {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b == nil && shared.err == nil {
		var c testCert
		if c, shared.err = makeTestCert(); shared.err == nil {
			shared.b, shared.err = Start(Options{TrustCerts: []*x509.Certificate{c.cert}})
		}
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.b
}

// NewTab opens a tab in the shared browser for the test, closed at its end.
func NewTab(t testing.TB) *Tab {
	t.Helper()
	return Shared(t).NewTab(t)
}
