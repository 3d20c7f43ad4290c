package hub

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

const plainSample = "POST /.well-known/mercure HTTP/1.1\r\nHost: localhost:8080\r\n" +
	"Content-Type: application/x-www-form-urlencoded\r\nAuthorization: Bearer abc.def.ghi\r\n" +
	"User-Agent: test\r\nContent-Length: 20\r\n\r\ntopic=t&data=a%20b&x"

// TestParsePlainPrefixes: every prefix of a plain publication is partial,
// the whole is plain, and what follows it is not part of it.
func TestParsePlainPrefixes(t *testing.T) {
	for i := range len(plainSample) {
		if _, st := parsePlain([]byte(plainSample[:i])); st != plainPartial {
			t.Fatalf("the first %d bytes: status %d, want partial", i, st)
		}
	}
	for _, next := range []string{"", "POST", "garbage"} {
		req, st := parsePlain([]byte(plainSample + next))
		if st != plainOK || req.size != len(plainSample) || req.token != "abc.def.ghi" || string(req.body) != "topic=t&data=a%20b&x" {
			t.Fatalf("followed by %q: %+v, status %d", next, req, st)
		}
	}
}

func TestParsePlainRefuses(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(plainSample, old) {
			t.Fatalf("the sample has no %q", old)
		}
		return strings.Replace(plainSample, old, new, 1)
	}
	for name, req := range map[string]string{
		"GET":              replace("POST", "GET"),
		"another path":     replace("mercure HTTP", "mercure/x HTTP"),
		"HTTP/1.0":         replace("HTTP/1.1", "HTTP/1.0"),
		"bare LF":          replace("test\r\n", "test\n"),
		"folded":           replace("test\r\n", "test\r\n continued\r\n"),
		"no colon":         replace("User-Agent: test", "User-Agent test"),
		"space in name":    replace("User-Agent:", "User Agent:"),
		"control in value": replace("test", "te\x01st"),
		"two hosts":        replace("Host: localhost:8080\r\n", "Host: a\r\nHost: b\r\n"),
		"bad host":         replace("localhost:8080", "local/host"),
		"no host":          replace("Host: localhost:8080\r\n", ""),
		"signed length":    replace("Length: 20", "Length: +20"),
		"two lengths":      replace("Length: 20", "Length: 20\r\nContent-Length: 20"),
		"huge length":      replace("Length: 20", "Length: 99999999999"),
		"no length":        replace("Content-Length: 20\r\n", ""),
		"other type":       replace("x-www-form-urlencoded", "json"),
		"type parameter":   replace("urlencoded", "urlencoded; charset=utf-8"),
		"basic":            replace("Bearer", "Basic"),
		"empty token":      replace("Bearer abc.def.ghi", "Bearer "),
		"no token":         replace("Authorization: Bearer abc.def.ghi\r\n", ""),
		"close":            replace("User-Agent: test", "Connection: close"),
		"chunked":          replace("User-Agent: test", "Transfer-Encoding: chunked"),
		"expect":           replace("User-Agent: test", "Expect: 100-continue"),
		"cookie":           replace("User-Agent: test", "Cookie: a=b"),
		"origin":           replace("User-Agent: test", "Origin: https://example.com"),
		"upgrade":          replace("User-Agent: test", "Upgrade: h2c"),
	} {
		if _, st := parsePlain([]byte(req)); st != plainNot {
			t.Errorf("%s: status %d, want not plain", name, st)
		}
	}
}

// FuzzParsePlain: what parsePlain takes for a plain publication, net/http
// reads as the same request.
func FuzzParsePlain(f *testing.F) {
	f.Add([]byte(plainSample))
	f.Add([]byte(strings.Replace(plainSample, "User-Agent: test", "Connection: keep-alive", 1)))
	f.Add([]byte(strings.Replace(plainSample, "Host: localhost:8080", "host:[::1]:80", 1)))
	f.Add([]byte(strings.Replace(plainSample, "abc.def.ghi", "abc.def.ghi\u00a0", 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, st := parsePlain(b)
		if st != plainOK {
			return
		}
		br := bufio.NewReader(bytes.NewReader(b))
		r, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("plain, but net/http: %v", err)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("plain, but net/http reading the body: %v", err)
		}
		rest, _ := io.ReadAll(br)
		switch {
		case r.Method != http.MethodPost || r.URL.Path != Path || r.URL.RawQuery != "" || r.ProtoMinor != 1:
			t.Fatalf("plain, but net/http reads %s %s HTTP/1.%d", r.Method, r.URL, r.ProtoMinor)
		case r.Close || len(r.TransferEncoding) > 0 || r.Header.Get("Expect") != "" || r.Header.Get("Cookie") != "" || r.Header.Get("Origin") != "":
			t.Fatalf("plain, but net/http reads more: %v", r.Header)
		case r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" && !strings.EqualFold(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
			t.Fatalf("plain, but net/http reads the type %q", r.Header.Get("Content-Type"))
		case !bytes.Equal(body, req.body):
			t.Fatalf("the body: %q, net/http %q", req.body, body)
		case len(b)-len(rest) != req.size:
			t.Fatalf("the request's size: %d, net/http %d", req.size, len(b)-len(rest))
		}
		tok, _, err := requestToken(r, DefaultCookieName)
		if err != nil || tok != req.token {
			t.Fatalf("the token: %q, net/http %q (%v)", req.token, tok, err)
		}
	})
}
