//go:build linux

package hub

import (
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// watcher notices the clients that close their connection: one epoll set
// holds every watched socket, registered for EPOLLRDHUP (the peer closed,
// or shut down its sending side) and, as epoll always reports them,
// EPOLLHUP and EPOLLERR (a reset). One goroutine waits on the set through
// the Go runtime's own poller, which the set's descriptor is registered
// with, so no thread blocks in epoll_wait.
//
// Each watched socket is known to the set by a token, a number never
// reused, which the map turns back into its subscriber: an event that
// arrives for a connection the hub has meanwhile closed finds no token and
// is ignored, whatever connection took over the descriptor's number.
// Closing a socket removes it from the set (the kernel does it when the
// descriptor's file is released), so unwatch only forgets the token.
type watcher struct {
	logger *slog.Logger

	// The set is made, and its goroutine started, by the first watch: a
	// hub that never hijacks a socket (HTTP/2 only, or tests on in-memory
	// pipes) has neither.
	once   sync.Once
	file   *os.File // the epoll set, in the runtime's poller; nil if it failed
	fd     int
	exited chan struct{} // closed when the goroutine has returned

	mu     sync.Mutex
	closed bool
	last   uint64                 // the last token given
	subs   map[uint64]*subscriber // by token
}

// watchEvents are the events a watched socket is registered for. They are
// edge-triggered: a close is reported once, and data the client sends is
// not asked for.
const watchEvents = unix.EPOLLRDHUP | unix.EPOLLET

// watchBatch is the most events one wake of the watcher takes; more wait
// for the next.
const watchBatch = 256

// newWatcher returns a watcher that watches nothing yet.
func newWatcher(logger *slog.Logger) *watcher {
	return &watcher{logger: logger, subs: make(map[uint64]*subscriber)}
}

// open makes the epoll set and starts its goroutine. Without epoll, the
// hub watches by reading.
func (w *watcher) open() {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		w.logger.Warn("hub: no epoll set; a goroutine per subscriber watches for closed connections", "error", os.NewSyscallError("epoll_create1", err))
		return
	}
	file := os.NewFile(uintptr(fd), "epoll")
	raw, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		w.logger.Warn("hub: no epoll set; a goroutine per subscriber watches for closed connections", "error", err)
		return
	}
	w.file, w.fd, w.exited = file, fd, make(chan struct{})
	go func() {
		defer close(w.exited)
		w.run(raw)
	}()
}

// watch starts watching conn for s, and reports false when it cannot: conn
// has no socket, or it is already closed.
func (w *watcher) watch(s *subscriber, conn net.Conn) bool {
	raw := socketOf(conn)
	if raw == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.once.Do(w.open)
	if w.file == nil {
		return false
	}
	w.last++
	token := w.last
	var errno error
	// Within Control the descriptor cannot be closed under the call. The
	// lock is held across it so that an event for the new token, which
	// may come at once, waits for the map to know it.
	err := raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: watchEvents}
		setToken(&ev, token)
		errno = unix.EpollCtl(w.fd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || errno != nil {
		return false
	}
	w.subs[token] = s
	s.watched = token
	return true
}

// unwatch forgets s, which its runner is finishing, before its connection
// is closed.
func (w *watcher) unwatch(s *subscriber) {
	if s.watched == 0 {
		return
	}
	w.mu.Lock()
	delete(w.subs, s.watched)
	w.mu.Unlock()
	s.watched = 0
}

// watching returns the number of connections watched.
func (w *watcher) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.subs)
}

// close stops the watcher's goroutine and waits for it to return. The hub
// calls it once every subscriber has finished.
func (w *watcher) close() {
	w.mu.Lock()
	w.closed = true
	w.once.Do(func() {}) // no set from now on
	w.mu.Unlock()
	if w.file != nil {
		_ = w.file.Close()
		<-w.exited
	}
}

// run serves the set until close: it stops the subscriber of every socket
// whose peer closed it.
func (w *watcher) run(raw syscall.RawConn) {
	events := make([]unix.EpollEvent, watchBatch)
	var gone []*subscriber
	for {
		n := 0
		var werr error
		err := raw.Read(func(fd uintptr) bool {
			for {
				n, werr = unix.EpollWait(int(fd), events, 0)
				if werr != unix.EINTR {
					break
				}
			}
			// Nothing ready: wait for the runtime's poller to say there
			// is (the set's descriptor turns readable).
			return n > 0 || werr != nil
		})
		if err != nil {
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if !closed {
				w.logger.Error("hub: the watcher of closed connections stopped; closes are noticed at the next write", "error", err)
			}
			return
		}
		if werr != nil {
			w.logger.Error("hub: the watcher of closed connections stopped; closes are noticed at the next write", "error", os.NewSyscallError("epoll_wait", werr))
			return
		}
		w.mu.Lock()
		for _, ev := range events[:n] {
			token := tokenOf(&ev)
			if s := w.subs[token]; s != nil {
				delete(w.subs, token)
				gone = append(gone, s)
			}
		}
		w.mu.Unlock()
		for _, s := range gone {
			s.stop(hungUp)
		}
		clear(gone)
		gone = gone[:0]
	}
}

// setToken and tokenOf put a token in an event's 64 bits of user data,
// which x/sys/unix splits into two halves, Fd and Pad; the kernel gives them
// back as they were set.
func setToken(ev *unix.EpollEvent, token uint64) {
	ev.Fd, ev.Pad = int32(uint32(token)), int32(uint32(token>>32))
}

func tokenOf(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
