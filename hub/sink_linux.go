//go:build linux

package hub

import (
	"net"
	"syscall"

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
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return linuxConn{raw}
}

type linuxConn struct{ raw syscall.RawConn }

func (c linuxConn) tryWritev(iov [][]byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), iov)
			if werr != unix.EINTR {
				return true // done, whatever happened: never wait here
			}
		}
	})
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
