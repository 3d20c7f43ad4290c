//go:build linux

package hub

import (
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConn writes to a socket without ever waiting for it.
type rawConn interface {
	// tryWritev writes what the socket takes of iov now and returns the
	// number of bytes written, possibly none.
	tryWritev(iov [][]byte) (int, error)
	// closeWith stops the writes, waiting for one in progress, then calls
	// close, which closes the connection.
	closeWith(close func() error) error
}

// nonblockingConn returns a rawConn for TCP and Unix connections, whose
// descriptors the Go runtime keeps in nonblocking mode, and nil for any
// other connection (TLS among them), whose writes then run on goroutines.
func nonblockingConn(conn net.Conn) rawConn {
	var sc syscall.Conn
	switch c := conn.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	case *servedConn:
		return nonblockingConn(c.Conn)
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if err := raw.Control(func(d uintptr) { fd = int(d) }); err != nil || fd < 0 {
		return nil
	}
	return &linuxConn{fd: fd}
}

// maxUnsent bounds the bytes the kernel keeps queued and not yet sent for
// a subscriber's TCP connection (TCP_NOTSENT_LOWAT): a write that finds
// that many waiting takes nothing more. A client that stops reading thus
// holds at most about this much of the hub's kernel memory, plus one
// segment and what was in flight to it, and costs the pool workers no more
// copying than that before its write waits in a goroutine of its own.
//
// Without it the kernel grows a connection's send buffer up to tcp_wmem's
// maximum (4 MiB by default) whether the client reads or not. Two thousand
// clients that never read, on a topic that got 20 MiB (herald bench slow),
// then took 1.7 GB of kernel memory, which put every TCP socket of the
// machine under memory pressure; the pool workers spent seconds copying
// into their buffers while the subscribers that read waited their turn
// (delivery p99 of seconds, against tens of milliseconds with the bound).
//
// It bounds the unsent bytes only, not those in flight, unlike a smaller
// send buffer (SO_SNDBUF), which also caps what a client far away can
// receive per round trip: a send buffer of 32 KiB slowed even loopback
// readers to seconds. A write larger than this (up to maxWriteBytes) to a
// client that reads but lags takes part of it and finishes in a
// goroutine, as any write that would block does.
const maxUnsent = 64 << 10

// boundUnsent applies maxUnsent to a TCP connection, under TLS or not;
// other connections are left as they are. It is best effort: a socket
// that refuses the option keeps the kernel's default.
func boundUnsent(conn net.Conn) {
	tc, ok := baseConn(conn).(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, maxUnsent)
	})
}

// linuxConn writes to a socket's descriptor directly, keeping what a write
// needs from one write to the next, so that writing allocates nothing. One
// goroutine at a time writes to a subscriber.
//
// The writes bypass the net package's descriptor (RawConn.Write), whose
// locking and poller checks cost more than a tenth of a delivery's user
// time: they touch two more structures per connection, cold in the cache
// when a worker goes through a thousand subscribers. What that locking
// guarded against, a write to a descriptor number that a close released
// and another connection reused, mu does here: the connection is closed
// only through closeWith, which waits for a write in progress and bars
// the next ones. Writes that may wait (connSink.writeBlocking) still go
// through the net.Conn.
type linuxConn struct {
	mu     sync.Mutex
	fd     int
	closed bool
	iovecs []unix.Iovec
}

// maxIovecs is the most buffers one writev takes (Linux's IOV_MAX); the
// rest waits for the next write.
const maxIovecs = 1024

// tryWritev writes iov once, retrying only when a signal interrupted it:
// never waiting for the socket.
//
// The call is a raw one, made without telling the Go scheduler: the socket
// is nonblocking, so the call only ever costs the kernel's work of taking
// the bytes, and the goroutine keeps its P as for any other work. Made the
// usual way, a write that took longer than one tick of the runtime's system
// monitor (20 µs, a loopback write that wakes the reader can take that) got
// its P handed to another thread, and the monitor, finding such writes
// every tick, never slowed down: a tenth of the hub's CPU went to thread
// switches when fanning out. The cost is that a stop of the world for the
// garbage collector waits for a write in progress, which copies at most a
// socket buffer.
func (c *linuxConn) tryWritev(iov [][]byte) (int, error) {
	vs := c.iovecs[:0]
	for _, b := range iov {
		if len(b) == 0 {
			continue
		}
		if len(vs) == maxIovecs {
			break
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		vs = append(vs, v)
	}
	c.iovecs = vs
	if len(vs) == 0 {
		return 0, nil
	}
	defer clear(vs) // hold no pointer to the buffers (past its length, earlier writes cleared them)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	for {
		r, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&vs[0])), uintptr(len(vs)))
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, errno
	}
}

func (c *linuxConn) closeWith(close func() error) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return close()
}
