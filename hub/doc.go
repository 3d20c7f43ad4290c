// Package hub is a Mercure hub as a Go library: a Hub, made by New, is an
// http.Handler that serves Server-Sent Events subscriptions and
// publications at /.well-known/mercure, and Publish lets a Go program
// publish without HTTP. It speaks the 0.x dialect of the Mercure protocol
// (draft-dunglas-mercure-07), so existing Mercure clients work unchanged;
// docs/api.md lists where it differs from the reference hub.
//
// # History
//
// Every event has a position in one ordered Log, which live delivery and
// replay both read: a subscriber that reconnects with Last-Event-ID gets
// every event after its own, once. A resume is a lookup of the ID, never a
// scan. The default Log is a MemoryLog; other packages provide durable
// ones, and hubtest holds the suite they all pass.
//
// # Presence
//
// Who is subscribed, which the subscriptions API lists, is a Presence,
// kept apart from the Log: by default the hub's own subscribers, read from
// the index it delivers with; in a cluster, every node's. hubtest holds
// the suite every Presence passes.
//
// # Delivery
//
// An event is encoded once and shared by every subscriber. Each subscriber
// is live (a small queue of pointers to encoded events) or catching up (a
// cursor into the log): one that reads slower than events arrive costs a
// cursor, not a buffer, and is disconnected only when the log no longer
// holds what it has not read, or when a write to it does not finish within
// the dispatch timeout; Stats counts such drops, and the hub logs them.
// Everything pending for a subscriber goes out in one
// write. HTTP/1.1 subscriptions are hijacked from net/http, so that an idle
// one holds no goroutine and no buffer; a pool of workers writes to them
// without blocking. HTTP/2 streams stay in their handler. A catch-up read
// that the log cannot answer from memory (see RecentReader) is made by one
// of a few log readers, so that no writer waits for a disk or a server.
//
// # Topics
//
// A selector is "*", an exact topic or a URI template, and one matcher
// decides for live delivery, replay, ended topics and the claims of tokens
// alike. An event costs only the templates whose literal prefix fits its
// topics. Config bounds what clients can make the hub hold: the selectors
// of a subscription, the distinct templates of all subscribers, the
// selectors of a token's claim.
//
// # Serving
//
// Any http.Server can serve a Hub. Serve does it with less CPU, and
// safely under a flood of connections: it answers plain HTTP/1.1
// publications itself and hands every other connection to the server; it
// holds at most Config.MaxConnections connections, refusing more with 503;
// it survives running out of file descriptors; and it speaks TLS when the
// server's TLSConfig holds a certificate.
//
// # Concurrency
//
// A Hub is safe for concurrent use. Shutdown stops it gracefully, Close at
// once; after either, Publish returns ErrClosed and subscriptions get 503.
//
// # Locks
//
// The hub's mutexes are taken in this order, and never the other way:
//
//  1. index.mu, read-held by the dispatcher's fan-out (dispatch,
//     endTopics, fellBehind), by Shutdown and by the subscriptions API
//     while they visit subscribers, and briefly by admit and size; written
//     only by join and remove.
//  2. index.matchMu, under index.mu's read lock, while index.each visits
//     template groups.
//  3. subscriber.mu, endedTopics.mu and the matcher's cache.mu, which the
//     visits take (offer and the subscriber's changes, endOf, authorized);
//     runQueue.mu, which scheduling takes once subscriber.mu is released
//     (subscriber.change), so possibly under index.mu (the log readers'
//     runQueue.mu is taken with no lock held); and linuxConn.mu,
//     which Shutdown's abort takes, once subscriber.mu is released, under
//     index.mu.
//
// Every lock of step 3 is a leaf: nothing is taken while it is held. So
// are those outside the chain: timers.mu and watcher.mu (each released
// before the subscribers it found are stopped; watcher.mu is held around
// the sync.Once that opens the epoll set), Hub.passedMu, liveCount.mu,
// notices.mu, slowDrops.mu, MemoryLog.mu, plainServer.mu and
// servedConn.mu. The hub holds none of its locks while it calls a Log or
// a Presence, so a Log that blocks holds up its caller alone; a write to a
// subscriber holds only its connection's linuxConn.mu. The Logger is
// called under notices.mu, slowDrops.mu and watcher.mu: its handler's own
// locks come after them. Shutdown's sync.Once is held for the whole of Shutdown, so
// it comes before every lock.
package hub
