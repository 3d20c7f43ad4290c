package cli_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/sse"
)

// waitBound bounds every wait for a condition: only a broken run reaches
// it.
const waitBound = 30 * time.Second

// transportCase is a way of reaching the daemon: HTTP/1.1, HTTP/2 over TLS
// (the development certificate) or HTTP/2 with prior knowledge (h2c).
type transportCase struct {
	name       string
	args       []string // serve's, beside the common ones
	proto      int      // the response's ProtoMajor
	serverSide string   // the hub's transport label for the stream
}

var transportCases = []transportCase{
	{"http1.1", nil, 1, "http1.1"},
	{"h2 over TLS", []string{"-dev-tls"}, 2, "http2"},
	{"h2c", []string{"-h2c"}, 2, "http2"},
}

// daemon is a running "herald serve" and an HTTP client that speaks to it
// the way its case says.
type daemon struct {
	t      *testing.T
	base   string // scheme://host:port
	client *http.Client
	tok    string // may publish and subscribe to anything
	stderr *syncBuffer
}

// startDaemon runs serve for the case, with a short heartbeat and a
// dispatch timeout shorter than it: an HTTP/2 stream's write deadline,
// left in place after a write, would reset the idle stream before the
// heartbeat.
func startDaemon(t *testing.T, tc transportCase, extra ...string) *daemon {
	t.Helper()
	dataDir := t.TempDir()
	args := append([]string{"-store", "memory", "-data-dir", dataDir, "-publisher-jwt-key", testKey, "-anonymous",
		"-heartbeat", "2s", "-dispatch-timeout", "1s", "-metrics-addr", "main"}, tc.args...)
	base, stderr, _ := serve(t, nil, append(args, extra...)...)
	d := &daemon{t: t, base: base, stderr: stderr}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	switch tc.name {
	case "http1.1":
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
	case "h2 over TLS":
		d.base = "https://" + strings.TrimPrefix(base, "http://")
		pem, err := os.ReadFile(filepath.Join(dataDir, "dev-tls", "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP2(true)
	case "h2c":
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	d.client = &http.Client{Transport: tr}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}},
	}).SignedString([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	d.tok = tok
	return d
}

// publish publishes the form and returns the event's ID.
func (d *daemon) publish(form url.Values) string {
	d.t.Helper()
	req, _ := http.NewRequestWithContext(d.t.Context(), http.MethodPost, d.base+"/.well-known/mercure", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+d.tok)
	resp, err := d.client.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("publishing %v: %s %s", form, resp.Status, b)
	}
	return string(b)
}

// sub is an open subscription.
type sub struct {
	resp     *http.Response
	conn     net.Conn // the connection it came on
	cancel   context.CancelFunc
	events   chan sse.Event
	comments atomic.Int64
	ended    chan error // the stream's end: nil for a clean one
}

// subscribe opens a subscription to the topic, resuming after lastID if
// set, and checks that it came over the case's protocol.
func (d *daemon) subscribe(tc transportCase, topic, lastID string) *sub {
	d.t.Helper()
	ctx, cancel := context.WithCancel(d.t.Context())
	s := &sub{cancel: cancel, events: make(chan sse.Event, 64), ended: make(chan error, 1)}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { s.conn = i.Conn }})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/.well-known/mercure?topic="+url.QueryEscape(topic), nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		cancel()
		d.t.Fatal(err)
	}
	s.resp = resp
	d.t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.ProtoMajor != tc.proto {
		d.t.Fatalf("subscribed over %s, want HTTP/%d", resp.Proto, tc.proto)
	}
	if resp.StatusCode != http.StatusOK {
		return s
	}
	dec := sse.NewDecoder(resp.Body)
	dec.OnComment = func(string) { s.comments.Add(1) }
	go func() {
		for {
			var ev sse.Event
			if err := dec.Decode(&ev); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				s.ended <- err
				close(s.events)
				return
			}
			s.events <- ev
		}
	}()
	return s
}

// next returns the subscription's next event.
func (s *sub) next(t *testing.T) sse.Event {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(waitBound):
		t.Fatal("no event")
	}
	return sse.Event{}
}

// streams returns herald_subscribers for the transport: the streams the
// hub holds open.
func (d *daemon) streams(transport string) int {
	d.t.Helper()
	resp, err := d.client.Get(d.base + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	re := regexp.MustCompile(`(?m)^herald_subscribers\{transport="` + regexp.QuoteMeta(transport) + `"\} (\d+)$`)
	b, _ := io.ReadAll(resp.Body)
	m := re.FindSubmatch(b)
	if m == nil {
		d.t.Fatalf("no herald_subscribers for %s in:\n%s", transport, b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Delivery, heartbeat, resume, close detection and end of stream work
// alike over HTTP/1.1, HTTP/2 over TLS and h2c, against the real daemon.
// Each stream's protocol is checked on both sides: the client's response,
// and the hub's count of streams by transport, which it takes from the
// request's ProtoMajor.
func TestServeStreamsOverEachProtocol(t *testing.T) {
	t.Parallel()
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startDaemon(t, tc)

			// Delivery, on a stream the hub counts under its transport.
			s := d.subscribe(tc, "/a", "")
			if n := d.streams(tc.serverSide); n != 1 {
				t.Fatalf("the hub holds %d %s streams, want 1", n, tc.serverSide)
			}
			d.publish(url.Values{"topic": {"/a"}, "data": {"hello"}})
			if ev := s.next(t); ev.Data != "hello" {
				t.Fatalf("got %+v", ev)
			}

			// Heartbeat: a comment after the first, the stream idle for
			// longer than the dispatch timeout meanwhile.
			waitUntil(t, "a heartbeat", func() bool { return s.comments.Load() >= 2 })
			d.publish(url.Values{"topic": {"/a"}, "data": {"after the heartbeat"}})
			if ev := s.next(t); ev.Data != "after the heartbeat" {
				t.Fatalf("got %+v", ev)
			}

			// Resume with Last-Event-ID: the events after it, from the
			// history.
			first := d.publish(url.Values{"topic": {"/r"}, "data": {"one"}})
			d.publish(url.Values{"topic": {"/r"}, "data": {"two"}})
			d.publish(url.Values{"topic": {"/r"}, "data": {"three"}})
			r := d.subscribe(tc, "/r", first)
			if got := r.resp.Header.Get("Last-Event-ID"); got != first {
				t.Errorf("Last-Event-ID %q, want %q", got, first)
			}
			for _, want := range []string{"two", "three"} {
				if ev := r.next(t); ev.Data != want {
					t.Fatalf("resuming: got %+v, want %q", ev, want)
				}
			}

			// Close detection: a client that cancels one stream leaves the
			// hub's streams at once; its other stream, on the same HTTP/2
			// connection, lives on.
			before := d.streams(tc.serverSide)
			c := d.subscribe(tc, "/c", "")
			if tc.proto == 2 && c.conn != s.conn {
				t.Fatal("the HTTP/2 streams came on different connections")
			}
			waitUntil(t, "the new stream", func() bool { return d.streams(tc.serverSide) == before+1 })
			c.cancel()
			waitUntil(t, "the cancelled stream to leave", func() bool { return d.streams(tc.serverSide) == before })
			d.publish(url.Values{"topic": {"/a"}, "data": {"still here"}})
			if ev := s.next(t); ev.Data != "still here" {
				t.Fatalf("got %+v", ev)
			}

			// End of stream: the final event, the stream's end, then 204
			// for a reconnection from it.
			e := d.subscribe(tc, "/e", "")
			last := d.publish(url.Values{"topic": {"/e"}, "data": {"the end"}, "end": {"1"}})
			if ev := e.next(t); ev.Data != "the end" {
				t.Fatalf("got %+v", ev)
			}
			select {
			case err := <-e.ended:
				if err != nil {
					t.Fatalf("the stream ended with %v", err)
				}
			case <-time.After(waitBound):
				t.Fatal("the stream did not end")
			}
			again := d.subscribe(tc, "/e", last)
			if again.resp.StatusCode != http.StatusNoContent {
				t.Fatalf("reconnecting to an ended topic: %s", again.resp.Status)
			}
		})
	}
}

// More streams than a browser opens HTTP/1.1 connections to a host, on
// one HTTP/2 connection, all receive the events.
func TestServeManyStreamsOnOneConnection(t *testing.T) {
	t.Parallel()
	const streams = 16
	for _, tc := range transportCases[1:] {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startDaemon(t, tc)
			subs := make([]*sub, streams)
			for i := range subs {
				subs[i] = d.subscribe(tc, "/m", "")
				if subs[i].conn != subs[0].conn {
					t.Fatalf("stream %d came on another connection", i)
				}
			}
			waitUntil(t, "the streams", func() bool { return d.streams(tc.serverSide) == streams })
			for i := range 3 {
				data := fmt.Sprint("event ", i)
				d.publish(url.Values{"topic": {"/m"}, "data": {data}})
				for j, s := range subs {
					if ev := s.next(t); ev.Data != data {
						t.Fatalf("stream %d: got %+v, want %q", j, ev, data)
					}
				}
			}
		})
	}
}

// With -h2c, the hub's own reading of a connection's first bytes (its
// fast path for plain publications) hands the HTTP/2 preface over
// untouched, also when it comes a byte at a time, and HTTP/1.1 works on
// the same port, the fast path included.
func TestServeH2CPreface(t *testing.T) {
	t.Parallel()
	tc := transportCases[2]
	d := startDaemon(t, tc)
	addr := strings.TrimPrefix(d.base, "http://")

	// The preface and a SETTINGS frame, split at every byte.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitBound))
	hello := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
	for i := range hello {
		if _, err := conn.Write(hello[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	// The server's first frame is its SETTINGS: type 4 on stream 0.
	head := make([]byte, 9)
	if _, err := io.ReadFull(conn, head); err != nil {
		t.Fatalf("no HTTP/2 frame: %v", err)
	}
	if head[3] != 4 || head[5]|head[6]|head[7]|head[8] != 0 {
		t.Fatalf("the first frame is not SETTINGS: % x", head)
	}

	// HTTP/1.1, publishing as a backend does (the fast path) and
	// subscribing, on the same port.
	h1 := transportCases[0]
	client := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	client.Transport.(*http.Transport).Protocols.SetHTTP1(true)
	defer client.CloseIdleConnections()
	d1 := &daemon{t: t, base: d.base, client: client, tok: d.tok}
	s := d1.subscribe(h1, "/p", "")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	body := "topic=%2Fp&data=fast"
	fmt.Fprintf(raw, "POST /.well-known/mercure HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		addr, d.tok, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publishing over HTTP/1.1: %s", resp.Status)
	}
	if ev := s.next(t); ev.Data != "fast" {
		t.Fatalf("got %+v", ev)
	}
}

// The development certificate: made at the first start in the data
// directory, for localhost and the loopback addresses, reused at the next
// start, trusted by a client given the path the banner prints, with the
// SPKI hash Chromium takes, in text and as a JSON record.
func TestServeDevTLS(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	certPath := filepath.Join(dataDir, "dev-tls", "cert.pem")
	var first []byte
	for i, format := range []string{"text", "json"} {
		base, stderr, stop := serve(t, nil, "-store", "memory", "-data-dir", dataDir, "-dev-tls", "-log-format", format)
		out := stderr.String()
		abs, _ := filepath.Abs(certPath)
		for _, want := range []string{"https://" + strings.TrimPrefix(base, "http://") + "/.well-known/mercure",
			"curl -N --cacert " + abs, "--ignore-certificate-errors-spki-list=", "certutil -d sql:$HOME/.pki/nssdb", "update-ca-certificates"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s start: no %q in:\n%s", format, want, out)
			}
		}
		if format == "json" && !strings.Contains(out, `"spki_sha256":"`) {
			t.Errorf("no spki_sha256 field in:\n%s", out)
		}
		pemBytes, err := os.ReadFile(certPath)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = pemBytes
			if !strings.Contains(out, "(made now)") {
				t.Errorf("the first start does not say it made the certificate:\n%s", out)
			}
		} else if string(pemBytes) != string(first) {
			t.Error("the second start made a new certificate")
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pemBytes)
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
		for _, host := range []string{"localhost", "127.0.0.1"} {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
			resp, err := (&http.Client{Transport: tr}).Get("https://" + net.JoinHostPort(host, port) + "/healthz")
			if err != nil {
				t.Fatalf("%s: %v", host, err)
			}
			resp.Body.Close()
			tr.CloseIdleConnections()
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				t.Errorf("%s: %s over %s", host, resp.Status, resp.Proto)
			}
		}
		// The SPKI hash printed is the certificate's.
		block, _ := pem.Decode(pemBytes)
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		spki := base64.StdEncoding.EncodeToString(sum[:])
		if !strings.Contains(out, spki) {
			t.Errorf("the SPKI hash %s is not in:\n%s", spki, out)
		}
		if code := stop(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
	key, err := os.Stat(filepath.Join(dataDir, "dev-tls", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if key.Mode().Perm()&0o077 != 0 {
		t.Errorf("the key is readable by others: %v", key.Mode())
	}
}

// -http-redirect-addr answers every request with 308 to the same path and
// query on the HTTPS listener.
func TestServeHTTPRedirect(t *testing.T) {
	t.Parallel()
	base, stderr, _ := serve(t, nil, "-store", "memory", "-dev-tls", "-http-redirect-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`from=http://(\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no redirect listener in:\n%s", stderr)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct{ method, host, target, want string }{
		{http.MethodGet, "localhost", "/.well-known/mercure?topic=%2Fa&topic=b", "https://localhost:" + port + "/.well-known/mercure?topic=%2Fa&topic=b"},
		{http.MethodPost, "example.com:8080", "/.well-known/mercure", "https://example.com:" + port + "/.well-known/mercure"},
		{http.MethodGet, "[::1]:80", "/", "https://[::1]:" + port + "/"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), c.method, "http://"+m[1]+c.target, strings.NewReader(""))
		req.Host = c.host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != c.want {
			t.Errorf("%s %s (Host %s): %s to %q, want 308 to %q", c.method, c.target, c.host, resp.Status, resp.Header.Get("Location"), c.want)
		}
	}
}

// The new settings' conflicts are configuration problems: exit 2, each
// named.
func TestServeTLSSettingsConflicts(t *testing.T) {
	t.Parallel()
	cert, key := writeCert(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"dev-tls and a certificate", []string{"-dev-tls", "-tls-cert", cert, "-tls-key", key}, "dev-tls: and tls-cert/tls-key both choose the certificate"},
		{"a redirection without TLS", []string{"-http-redirect-addr", ":0"}, "http-redirect-addr: redirects to HTTPS, but herald serves plain HTTP"},
		{"h2c with TLS", []string{"-h2c", "-dev-tls"}, "h2c: is HTTP/2 without TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, command := range []string{"serve", "check-config"} {
				code, _, stderr := cmd(t, nil, "", append([]string{command, "-store", "memory", "-data-dir", t.TempDir()}, c.args...)...)
				if !strings.Contains(stderr, c.want) || code == 0 || command == "serve" && code != cli.ExitUsage {
					t.Errorf("%s: exit %d, stderr:\n%s\nwant a failure (serve: exit 2) and %q", command, code, stderr, c.want)
				}
			}
		})
	}
}
