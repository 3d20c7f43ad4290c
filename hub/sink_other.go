//go:build !linux

package hub

import "net"

// rawConn writes to a socket without ever waiting for it.
type rawConn interface {
	tryWritev(iov [][]byte) (int, error)
	closeWith(close func() error) error
}

// nonblockingConn returns nil: outside Linux every write to a hijacked
// connection runs on a goroutine of its own.
func nonblockingConn(net.Conn) rawConn { return nil }

// boundUnsent does nothing: the bound on unsent bytes is set on Linux only.
func boundUnsent(net.Conn) {}
