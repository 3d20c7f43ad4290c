//go:build linux

package hub

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A write to a subscriber's socket allocates nothing, whatever the number
// of buffers, and a vector longer than the kernel takes is written in
// part, never refused.
func TestWritevAllocatesNothing(t *testing.T) {
	client, server := loopbackPair(t)
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&got, client)
		close(done)
	}()

	c := nonblockingConn(server)
	if c == nil {
		t.Fatal("no raw connection for TCP")
	}
	var want bytes.Buffer
	iov := make([][]byte, 0, 2000)
	for i := range 2000 {
		b := []byte{byte('a' + i%26)}
		if i%100 == 0 {
			b = nil // empty buffers are skipped
		}
		iov = append(iov, b)
	}
	write := func(iov [][]byte) {
		for len(iov) > 0 {
			n, err := c.tryWritev(iov)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range iov {
				want.Write(b[:min(n, len(b))])
				if n < len(b) {
					iov[0] = b[n:]
					break
				}
				n -= len(b)
				iov = iov[1:]
			}
		}
	}
	three := [][]byte{[]byte("ab"), []byte("c"), []byte("de")}
	allocs := testing.AllocsPerRun(20, func() {
		if n, err := c.tryWritev(three); n != 5 || err != nil {
			t.Fatalf("wrote %d bytes, %v", n, err)
		}
		want.WriteString("abcde")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write", allocs)
	}
	small := want.Len()
	want.Reset()
	write(append([][]byte(nil), iov...))
	server.Close()
	<-done
	if got.Len() != small+want.Len() || !bytes.Equal(got.Bytes()[small:], want.Bytes()) {
		t.Fatalf("received %d bytes, want %d", got.Len(), small+want.Len())
	}
}

// Once closed through closeWith, a raw connection writes nothing more, even
// when its descriptor number goes to a new connection: a write racing the
// close either happens before it or fails.
func TestRawConnClosedWritesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}
	for range 50 {
		client, server := pair()
		c := nonblockingConn(server)
		start := make(chan struct{})
		wrote := make(chan error, 1)
		go func() {
			<-start
			var err error
			for err == nil {
				_, err = c.tryWritev([][]byte{[]byte("x")})
			}
			wrote <- err
		}()
		close(start)
		if err := c.closeWith(server.Close); err != nil {
			t.Fatal(err)
		}
		if err := <-wrote; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a write after the close: %v, want net.ErrClosed", err)
		}
		// The next connection likely takes the descriptor number.
		next, nextServer := pair()
		if _, err := c.tryWritev([][]byte{[]byte("stray")}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a write after the close: %v, want net.ErrClosed", err)
		}
		nextServer.Close()
		if b, _ := io.ReadAll(next); len(b) != 0 {
			t.Fatalf("the next connection received %q", b)
		}
		next.Close()
		client.Close()
	}
}

// A client that reads nothing holds on the hub's side about maxUnsent
// bytes not yet sent, not a send buffer the kernel grows to megabytes.
func TestUnsentBytesBounded(t *testing.T) {
	_, server := loopbackPair(t)
	cs := newConnSink(server, time.Second)
	defer cs.abort()
	buf := make([]byte, 64<<10)
	for range 10_000 { // until the socket takes nothing: the client reads nothing
		n, err := cs.raw.tryWritev([][]byte{buf})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	var unsent int
	raw, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Control(func(fd uintptr) { unsent, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// maxUnsent, and the last segment a write added past it.
	if unsent > 2*maxUnsent {
		t.Fatalf("%d bytes unsent, want at most about %d", unsent, maxUnsent)
	}
}

// loopbackPair returns the two ends of a TCP connection over loopback,
// closed at the end of the test.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
