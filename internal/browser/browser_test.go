package browser_test

import (
	"bytes"
	"fmt"
	"image/png"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/herald-sse/herald/internal/browser"
)

func TestMain(m *testing.M) { browser.Main(m) }

// pages serves the harness tests' pages.
func pages(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	html := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><meta name="viewport" content="width=device-width"></head><body>` + body + `</body></html>`))
		}
	}
	mux.Handle("/clean", html(`<h1>clean</h1><script>window.ready = true;</script>`))
	mux.Handle("/broken", html(`<script>
console.error("broken on purpose", 42);
setTimeout(() => { throw new Error("uncaught on purpose"); }, 0);
fetch("/missing");
</script>`))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestCleanPage(t *testing.T) {
	t.Parallel()
	srv := pages(t)
	tab := browser.NewTab(t)
	tab.Navigate(srv.URL + "/clean")
	tab.WaitFor(`window.ready === true`, "")
	var title string
	tab.Eval(`document.querySelector("h1").textContent`, &title)
	if title != "clean" {
		t.Errorf("h1 = %q, want clean", title)
	}
	var sum int
	tab.Eval(`Promise.resolve(40 + 2)`, &sum)
	if sum != 42 {
		t.Errorf("awaited sum = %d, want 42", sum)
	}
	tab.NoProblems()
	reqs := tab.Requests()
	if len(reqs) != 1 || reqs[0].Status != 200 || reqs[0].Protocol != "http/1.1" || reqs[0].Type != "Document" {
		t.Errorf("requests = %+v, want the page's own, 200 over http/1.1", reqs)
	}
}

func TestProblemsRecorded(t *testing.T) {
	t.Parallel()
	srv := pages(t)
	tab := browser.NewTab(t)
	tab.Navigate(srv.URL + "/broken")
	for _, kind := range []string{"console", "exception", "request"} {
		p := tab.WaitProblem("a "+kind+" problem", func(p browser.Problem) bool { return p.Kind == kind })
		t.Log(p)
	}
	clean := browser.NewTab(t)
	clean.Navigate(srv.URL + "/clean")
	clean.NoProblems()
}

func TestScreenshot(t *testing.T) {
	t.Parallel()
	srv := pages(t)
	tab := browser.NewTab(t)
	tab.Navigate(srv.URL + "/clean")
	for _, c := range []struct {
		name string
		v    browser.Viewport
	}{{"phone", browser.Phone}, {"desktop", browser.Desktop}} {
		path := filepath.Join(t.TempDir(), "shots", c.name+".png")
		tab.Screenshot(path, c.v)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		scale := c.v.Scale
		if scale == 0 {
			scale = 1
		}
		if w, h := int(float64(c.v.Width)*scale), int(float64(c.v.Height)*scale); cfg.Width != w || cfg.Height != h {
			t.Errorf("%s: %dx%d, want %dx%d", c.name, cfg.Width, cfg.Height, w, h)
		}
	}
}

// The shared browser trusts the test certificate; a browser of one's own
// trusts it only when told to, or every certificate when told to.
func TestCertificates(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><link rel="icon" href="data:,"><p>%s</p>`, r.Proto)
	}))
	srv.TLS = browser.TestTLSConfig(t)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)

	tab := browser.NewTab(t)
	tab.Navigate(srv.URL)
	var proto string
	tab.Eval(`document.querySelector("p").textContent`, &proto)
	if proto != "HTTP/2.0" {
		t.Errorf("the page came over %s, want HTTP/2.0", proto)
	}
	tab.NoProblems()

	for _, c := range []struct {
		name  string
		opts  browser.Options
		loads bool
	}{
		{"no trust", browser.Options{}, false},
		{"ignoring certificate errors", browser.Options{IgnoreCertificateErrors: true}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b, err := browser.Start(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = chromedp.Run(b.NewTab(t).Context(), chromedp.NavigateResponse(srv.URL))
			if c.loads && err != nil || !c.loads && (err == nil || !strings.Contains(err.Error(), "ERR_CERT")) {
				t.Errorf("loading the page: %v", err)
			}
			b.Close()
			b.Close() // idempotent
		})
	}
}
