//go:build !linux

package hub

import (
	"log/slog"
	"net"
)

// watcher is the epoll watcher of Linux, which other systems do not have:
// there every connection is watched by a goroutine reading it
// (watchByReading).
type watcher struct{}

func newWatcher(*slog.Logger) *watcher { return &watcher{} }

func (*watcher) watch(*subscriber, net.Conn) bool { return false }
func (*watcher) unwatch(*subscriber)              {}
func (*watcher) watching() int                    { return 0 }
func (*watcher) close()                           {}
