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
// without blocking. HTTP/2 streams stay in their handler.
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
package hub
