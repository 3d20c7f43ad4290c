//go:build linux

package hub

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConn writes to a socket without ever waiting for it.
type rawConn interface {
	// tryWritev writes what the socket takes of iov now and returns the
	// number of bytes written, possibly none.
	tryWritev(iov [][]byte) (int, error)
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
	case *handedConn:
		sc = c.TCPConn
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return newLinuxConn(raw)
}

// linuxConn keeps what a write needs from one write to the next, so that
// writing allocates nothing: the callback given to RawConn.Write, its
// arguments and results, and the system call's vector. One goroutine at a
// time writes to a subscriber.
type linuxConn struct {
	raw    syscall.RawConn
	write  func(fd uintptr) bool // c.writev, bound once
	iov    [][]byte
	iovecs []unix.Iovec
	n      int
	werr   error
}

func newLinuxConn(raw syscall.RawConn) *linuxConn {
	c := &linuxConn{raw: raw}
	c.write = c.writev
	return c
}

// maxIovecs is the most buffers one writev takes (Linux's IOV_MAX); the
// rest waits for the next write.
const maxIovecs = 1024

func (c *linuxConn) tryWritev(iov [][]byte) (int, error) {
	c.iov = iov
	err := c.raw.Write(c.write)
	n, werr := c.n, c.werr
	c.iov, c.werr = nil, nil
	clear(c.iovecs) // hold no pointer to the buffers (past its length, earlier writes cleared them)
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}

// writev writes c.iov once, retrying only when a signal interrupted it:
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
func (c *linuxConn) writev(fd uintptr) bool {
	vs := c.iovecs[:0]
	for _, b := range c.iov {
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
	c.n, c.werr = 0, nil
	if len(vs) == 0 {
		return true
	}
	for {
		r, _, errno := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&vs[0])), uintptr(len(vs)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			c.werr = errno
		} else {
			c.n = int(r)
		}
		return true
	}
}
