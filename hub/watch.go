package hub

import (
	"net"
	"syscall"
)

// Noticing that a client closed its connection.
//
// A hijacked HTTP/1.1 subscription is only ever written to. With no read
// pending, nothing would tell the hub that the client has closed its end
// until a write failed: up to two heartbeats later, and never without
// heartbeats, the socket left in CLOSE-WAIT and the subscriber listed as
// active all that time. So the hub watches each such connection for the
// peer's close, a FIN or a RST, and finishes its subscriber at once.
//
// On Linux a watcher, one epoll set per hub served by one goroutine, waits
// for EPOLLRDHUP on every watched socket: an idle subscriber costs an entry
// in the kernel's set and one in a map, no goroutine and no buffer
// (watch_linux.go). Elsewhere, and for a connection that has no socket
// descriptor, a goroutine per subscriber waits in a read of the connection
// instead (watchByReading): as prompt, but it costs the goroutine's stack,
// a few KiB more per idle subscriber.
//
// A client that shuts down only its sending side (a half-close) is taken
// as gone, as net/http takes it for a handler: an event stream has nothing
// more to read from it, and browsers never half-close.
//
// HTTP/2 streams are not watched: their handler stays in ServeHTTP, and
// net/http ends the request's context when the stream or its connection
// ends.

// watchConn watches the connection of s, by the hub's watcher when it can,
// by a goroutine reading it otherwise.
func (h *Hub) watchConn(s *subscriber, conn net.Conn) {
	if h.watcher.watch(s, conn) {
		return
	}
	watchByReading(s, conn)
}

// watchByReading watches conn with a goroutine blocked in a read of it:
// the read fails once the client has closed the connection, or once the
// hub has. Bytes the client sends after its request are read and ignored.
func watchByReading(s *subscriber, conn net.Conn) {
	go func() {
		var buf [64]byte
		for {
			if _, err := conn.Read(buf[:]); err != nil {
				// After the hub closed the connection, s has finished
				// and the stop changes nothing.
				s.stop(hungUp)
				return
			}
		}
	}()
}

// socketOf returns the socket under conn, seen through TLS, or nil when
// conn has none.
func socketOf(conn net.Conn) syscall.RawConn {
	sc, ok := baseConn(conn).(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}
