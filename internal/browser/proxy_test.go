package browser_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// proxy is a TCP proxy between the browser and the hub that the test can
// cut, hold new connections at, and read: it parses the HTTP requests and
// responses that cross it, without touching them.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu        sync.Mutex
	holding   bool
	held      []net.Conn // accepted while holding, not yet connected
	open      []net.Conn // both ends of every connection being proxied
	requests  []*http.Request
	responses []int // the statuses, in the order they crossed
	changed   chan struct{}
}

// newProxy listens on 127.0.0.1 and forwards each connection to target.
func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, changed: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.mu.Lock()
		for _, c := range p.held {
			c.Close()
		}
		p.mu.Unlock()
	})
	go p.accept()
	return p
}

// URL is the proxy's base URL.
func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

// changedLocked wakes the waiters; p.mu is held.
func (p *proxy) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.holding {
			p.held = append(p.held, c)
			p.changedLocked()
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		p.forward(c)
	}
}

// forward connects c to the target and copies both ways, parsing as it
// goes.
func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.open = append(p.open, c, up)
	p.mu.Unlock()
	reqs, resps := p.parse(true), p.parse(false)
	go func() {
		io.Copy(up, io.TeeReader(c, reqs))
		reqs.Close()
		up.Close()
		c.Close()
	}()
	go func() {
		io.Copy(c, io.TeeReader(up, resps))
		resps.Close()
		up.Close()
		c.Close()
	}()
}

// parse returns a writer whose bytes it reads as HTTP requests (or
// responses), recording each; it drains whatever it cannot parse so that the
// copy feeding it never blocks on it.
func (p *proxy) parse(requests bool) *io.PipeWriter {
	pr, pw := io.Pipe()
	go func() {
		defer io.Copy(io.Discard, pr)
		br := bufio.NewReader(pr)
		for {
			if requests {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				p.mu.Lock()
				p.requests = append(p.requests, req)
				p.changedLocked()
				p.mu.Unlock()
				io.Copy(io.Discard, req.Body)
				continue
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.responses = append(p.responses, resp.StatusCode)
			p.changedLocked()
			p.mu.Unlock()
			io.Copy(io.Discard, resp.Body)
		}
	}()
	return pw
}

// hold makes the proxy accept new connections without connecting them,
// until release.
func (p *proxy) hold() {
	p.mu.Lock()
	p.holding = true
	p.mu.Unlock()
}

// release connects the held connections and stops holding.
func (p *proxy) release() {
	p.mu.Lock()
	held := p.held
	p.held, p.holding = nil, false
	p.mu.Unlock()
	for _, c := range held {
		p.forward(c)
	}
}

// cut closes every connection being proxied, both ends.
func (p *proxy) cut() {
	p.mu.Lock()
	open := p.open
	p.open = nil
	p.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// wait waits until cond, called with p.mu held, holds, for at most 30 s.
func (p *proxy) wait(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok, changed := cond(), p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			p.mu.Lock()
			defer p.mu.Unlock()
			p.t.Fatalf("proxy: waiting for %s: not within 30 s; %d requests, responses %v, %d held", what, len(p.requests), p.responses, len(p.held))
		}
	}
}

// seen returns the requests and the response statuses that crossed so far.
func (p *proxy) seen() ([]*http.Request, []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.requests...), append([]int(nil), p.responses...)
}
