package bench

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/herald-sse/herald/sse"
)

// MaxStreamsPerConn is the most subscription streams the tool opens on one
// HTTP/2 connection: the streams Go's HTTP/2 server allows at once on one
// connection by default (herald's too). Past it, the client would open
// another connection, and a run would not hold what it says.
const MaxStreamsPerConn = 250

// h2Conn is one HTTP/2 connection with prior knowledge (h2c): a client of
// its own, whose every request is a stream on the one connection it dials.
type h2Conn struct {
	tr     *http.Transport
	client *http.Client
}

// newH2Conn returns a client that speaks HTTP/2 with prior knowledge to
// the target, over a connection dialled as the tool dials every other.
func (t *target) newH2Conn() *h2Conn {
	tr := &http.Transport{
		DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return t.dial(ctx) },
		Protocols:       new(http.Protocols),
		MaxConnsPerHost: 1, // one connection, its streams multiplexed
	}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &h2Conn{tr: tr, client: &http.Client{Transport: tr}}
}

func (c *h2Conn) close() { c.tr.CloseIdleConnections() }

// subscribeH2 opens a subscription to topic i as a stream on c, and reads
// the response's head. The decoder reports comments to onComment, if set.
func (t *target) subscribeH2(ctx context.Context, c *h2Conn, i int, onComment func(string)) (*stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.subscriptionURL(i), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if t.Protocol == Mercure && t.SubscriberToken != "" {
		req.Header.Set("Authorization", "Bearer "+t.SubscriberToken)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.ProtoMajor != 2 {
		resp.Body.Close()
		return nil, fmt.Errorf("the hub answered over %s, not HTTP/2: run it with h2c (herald serve -h2c)", resp.Proto)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		return nil, &statusError{resp.StatusCode, strings.TrimSpace(string(b))}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	dec := sse.NewDecoder(resp.Body)
	dec.OnComment = onComment
	return &stream{body: resp.Body, dec: dec}, nil
}

// subscriptionURL is the URL of a subscription to topic i.
func (t *target) subscriptionURL(i int) string {
	u := *t.u
	if t.Protocol == Nchan {
		u.Path, u.RawPath, u.RawQuery = t.root()+"/sub/"+t.topic(i), "", ""
	} else {
		q := u.Query()
		q.Add("topic", t.topic(i))
		u.RawQuery = q.Encode()
	}
	return u.String()
}
