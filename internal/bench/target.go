package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herald-sse/herald/sse"
)

// Protocol is the dialect the tool speaks to the hub under test.
type Protocol string

const (
	// Mercure: subscribe with GET URL?topic=T, publish with a form POST to
	// URL, tokens as Authorization: Bearer.
	Mercure Protocol = "mercure"
	// Nchan: nchan's pub/sub locations, GET URL/sub/CHANNEL with Accept:
	// text/event-stream, and POST URL/pub/CHANNEL with the data as body.
	Nchan Protocol = "nchan"
)

// Target is the hub under test: where it is and how to talk to it.
type Target struct {
	// URL is the Mercure hub's (…/.well-known/mercure), or nchan's server
	// root, under which /pub/ and /sub/ are its publisher and subscriber
	// locations.
	URL string
	// Nodes, in place of URL, are the URLs of the nodes of one cluster:
	// several hubs that share one history (herald serve -redis), each
	// of which serves any subscriber and any publisher. Fanout and
	// Reconnect spread their subscribers and publishers over them (see
	// FanoutConfig); Conns and Slow take one hub only.
	Nodes           []string
	Protocol        Protocol // empty means Mercure
	PublisherToken  string   // Mercure: sent with each publication
	SubscriberToken string   // Mercure: sent with each subscription; empty for anonymous
	TopicPrefix     string   // Mercure topics are TopicPrefix followed by a number
}

// target is a Target ready to use.
type target struct {
	Target
	u       *url.URL
	addr    string // host:port to dial
	dialers []*net.Dialer
	next    atomic.Uint32
}

// resolve returns the target of a scenario that loads one hub.
func (t Target) resolve() (*target, error) {
	nodes, err := t.resolveNodes()
	if err != nil {
		return nil, err
	}
	if len(nodes) > 1 {
		return nil, fmt.Errorf("%d hub URLs: this scenario loads one hub", len(nodes))
	}
	return nodes[0], nil
}

// resolveNodes returns a target per node: the one of URL, or those of
// Nodes, in order.
func (t Target) resolveNodes() ([]*target, error) {
	urls := t.Nodes
	switch {
	case t.URL != "" && len(t.Nodes) > 0:
		return nil, errors.New("a hub URL and nodes: give one or the other")
	case t.URL != "":
		urls = []string{t.URL}
	case len(urls) == 0:
		return nil, errors.New("no hub URL")
	}
	nodes := make([]*target, len(urls))
	for i, u := range urls {
		n := t
		n.URL, n.Nodes = u, nil
		var err error
		if nodes[i], err = n.resolveOne(); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

func (t Target) resolveOne() (*target, error) {
	if t.URL == "" {
		return nil, errors.New("no hub URL")
	}
	if t.Protocol == "" {
		t.Protocol = Mercure
	}
	if t.Protocol != Mercure && t.Protocol != Nchan {
		return nil, fmt.Errorf("unknown protocol %q: want mercure or nchan", t.Protocol)
	}
	if t.TopicPrefix == "" {
		t.TopicPrefix = "https://bench.herald.example/t/"
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%q: the tool speaks plain http:// only", t.URL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	tg := &target{Target: t, u: u, addr: addr}
	tg.dialers = sourceDialers(u.Hostname())
	return tg, nil
}

// sourceDialers returns the dialers connections are spread over. Towards
// a loopback address they bind to 127.0.0.1 to 127.0.0.8 in turn, so that
// tens of thousands of connections, and the TIME_WAIT they leave behind,
// do not exhaust one address's ephemeral ports.
func sourceDialers(host string) []*net.Dialer {
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return []*net.Dialer{{Timeout: 10 * time.Second, KeepAlive: -1}}
	}
	ds := make([]*net.Dialer, 8)
	for i := range ds {
		ds[i] = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1,
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}}
	}
	return ds
}

func (t *target) dial(ctx context.Context) (net.Conn, error) {
	d := t.dialers[int(t.next.Add(1))%len(t.dialers)]
	return d.DialContext(ctx, "tcp", t.addr)
}

// topic returns topic i's name: a Mercure topic or an nchan channel.
func (t *target) topic(i int) string {
	if t.Protocol == Nchan {
		return "t" + strconv.Itoa(i)
	}
	return t.TopicPrefix + strconv.Itoa(i)
}

// publication returns the path and body that publish data on topic i,
// appending the body to buf.
func (t *target) publication(i int, data, buf []byte) (path string, body []byte) {
	if t.Protocol == Nchan {
		return t.root() + "/pub/" + t.topic(i), append(buf, data...)
	}
	buf = append(buf, "topic="...)
	buf = append(buf, url.QueryEscape(t.topic(i))...)
	buf = append(buf, "&data="...)
	buf = append(buf, url.QueryEscape(string(data))...)
	return t.u.RequestURI(), buf
}

// root is nchan's path prefix, without a trailing slash.
func (t *target) root() string { return strings.TrimSuffix(t.u.EscapedPath(), "/") }

// accepted reports whether a publication was: Mercure answers 200; nchan
// 201 when the channel has subscribers, 202 when not.
func (t *target) accepted(status int) bool {
	if t.Protocol == Nchan {
		return status == http.StatusCreated || status == http.StatusAccepted || status == http.StatusOK
	}
	return status == http.StatusOK
}

// newPublisher returns a connection that publishes.
func (t *target) newPublisher() *rawConn {
	ctype := "application/x-www-form-urlencoded"
	token := t.PublisherToken
	if t.Protocol == Nchan {
		ctype, token = "text/plain", ""
	}
	return newRawConn(t, ctype, token)
}

// subscription returns the request of a subscription to topic i.
func (t *target) subscription(i int, lastEventID string) []byte {
	var b strings.Builder
	b.WriteString("GET ")
	if t.Protocol == Nchan {
		b.WriteString(t.root() + "/sub/" + t.topic(i))
	} else {
		q := t.u.Query()
		q.Add("topic", t.topic(i))
		b.WriteString(t.u.EscapedPath() + "?" + q.Encode())
	}
	b.WriteString(" HTTP/1.1\r\nHost: " + t.u.Host + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n")
	if t.Protocol == Mercure && t.SubscriberToken != "" {
		b.WriteString("Authorization: Bearer " + t.SubscriberToken + "\r\n")
	}
	if lastEventID != "" {
		b.WriteString("Last-Event-ID: " + lastEventID + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// stream is an open subscription: a connection (or, over HTTP/2, a
// stream's body) and the decoder of its event stream.
type stream struct {
	conn net.Conn      // nil over HTTP/2
	body io.ReadCloser // over HTTP/2: closing it cancels the stream
	dec  *sse.Decoder
}

// subscribe opens a subscription to topic i and reads the response's
// head. The decoder reports comments to onComment, if set.
func (t *target) subscribe(ctx context.Context, i int, lastEventID string, onComment func(string)) (*stream, error) {
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write(t.subscription(i, lastEventID)); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		conn.Close()
		return nil, &statusError{resp.StatusCode, strings.TrimSpace(string(b))}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		conn.Close()
		return nil, fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	_ = conn.SetDeadline(time.Time{})
	dec := sse.NewDecoder(resp.Body)
	dec.OnComment = onComment
	return &stream{conn: conn, dec: dec}, nil
}

func (s *stream) close() {
	if s.conn != nil {
		s.conn.Close()
		return
	}
	s.body.Close()
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.body) }

// failureKind sorts a failure to connect or a lost connection into a few
// kinds worth counting.
func failureKind(err error) string {
	var se *statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "status " + strconv.Itoa(se.status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "out of file descriptors"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "out of ports"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by the hub"
	}
	return "other"
}
