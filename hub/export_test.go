package hub

import (
	"math"
	"slices"
	"sync"
)

// Peepholes for the black-box tests.

// Subscribers returns the number of subscribers in h's index.
func Subscribers(h *Hub) int { return h.index.size() }

// CatchingUp returns the number of subscribers reading from the log
// rather than from a live queue.
func CatchingUp(h *Hub) int {
	n := 0
	h.index.subscribers(func(s *subscriber) {
		s.mu.Lock()
		if s.mode == catchingUp {
			n++
		}
		s.mu.Unlock()
	})
	return n
}

// QueueLen returns the longest live queue of h's subscribers.
func QueueLen(h *Hub) int {
	n := 0
	h.index.subscribers(func(s *subscriber) {
		s.mu.Lock()
		n = max(n, len(s.queue))
		s.mu.Unlock()
	})
	return n
}

// TimerEntries returns the number of subscribers h's timers watch.
func TimerEntries(h *Hub) int {
	h.timers.mu.Lock()
	defer h.timers.mu.Unlock()
	return len(h.timers.heap)
}

// TopicIndex is the hub's index of subscribers by selector, holding
// stand-in subscribers: for the benchmarks of topic matching.
type TopicIndex struct{ x *index }

// NewTopicIndex returns an empty index that holds any number of templates.
func NewTopicIndex() *TopicIndex { return &TopicIndex{newIndex(math.MaxInt)} }

// Add registers a stand-in subscriber with these selectors.
func (t *TopicIndex) Add(selectors ...string) {
	if err := t.x.add(&subscriber{topics: selectors}); err != nil {
		panic(err)
	}
}

// Reached returns the subscribers the dispatcher would find for an event
// with these topics, counted as it sees them: once per matching selector.
func (t *TopicIndex) Reached(topics []string) int {
	n := 0
	t.x.each(topics, func(*subscriber) { n++ })
	return n
}

// Evaluated returns the number of times the index has matched a template
// with a topic.
func (t *TopicIndex) Evaluated() uint64 { return t.x.evaluated.Load() }

// TemplatesEvaluated returns the number of times h's index has matched a
// template with a topic: a deterministic measure of the work of
// publications.
func TemplatesEvaluated(h *Hub) uint64 { return h.index.evaluated.Load() }

// HeldTemplates returns the number of distinct templates h's subscribers
// hold.
func HeldTemplates(h *Hub) int {
	h.index.mu.RLock()
	defer h.index.mu.RUnlock()
	return len(h.index.templates)
}

// Matcher is the hub's matcher of claims' selectors, with its caches.
type Matcher struct{ m *matcher }

// NewMatcher returns a matcher whose caches hold cacheSize results (0:
// DefaultMatchCacheSize).
func NewMatcher(cacheSize int) *Matcher { return &Matcher{newMatcher(cacheSize)} }

// Match reports whether selector matches topic.
func (m *Matcher) Match(selector, topic string) bool { return m.m.match(selector, topic) }

// AnswerPlain answers a request as Serve does when it is a plain
// publication, or reports false.
func AnswerPlain(h *Hub, req []byte, out *[]byte) bool {
	r, st := parsePlain(req)
	return st == plainOK && h.publishPlain(r, out)
}

// WatchByReading makes h watch the connections of its next subscribers
// for a close with a goroutine reading each, as on systems without epoll.
func WatchByReading(h *Hub) { h.watcher.close() }

// Watching returns the number of connections h's epoll watcher watches.
func Watching(h *Hub) int { return h.watcher.watching() }

// IsPlain reports whether Serve takes req, the bytes of one request, for a
// plain publication: one it answers itself unless the hub refuses it.
func IsPlain(req []byte) bool {
	_, st := parsePlain(req)
	return len(req) <= plainBufSize && st == plainOK
}

// FromLog makes the subscribers of h that hold the selector read from the
// log at their cursor, as the dispatcher makes every subscriber do when it
// fell behind the log: their runners are then pool workers.
func FromLog(h *Hub, selector string) {
	h.index.subscribers(func(s *subscriber) {
		if slices.Contains(s.topics, selector) {
			s.toLog()
		}
	})
}

// NewIndexPresence returns the hub's default Presence over an index of
// its own, for hubtest.RunPresence. The hub's default has nothing to do in
// Join and Leave, since the hub itself puts each subscriber in its index
// and takes it out; here Join and Leave do that for it, with a stand-in
// subscriber made of the subscriptions, so that the suite checks the
// default's listing against the index as the hub keeps it.
func NewIndexPresence() Presence {
	return &indexPresence{localPresence: localPresence{newIndex(math.MaxInt)}, members: make(map[string]*subscriber)}
}

type indexPresence struct {
	localPresence
	mu      sync.Mutex
	members map[string]*subscriber
}

func (p *indexPresence) Join(subs []Subscription) {
	if len(subs) == 0 {
		return
	}
	s := &subscriber{id: subs[0].Subscriber}
	for _, sub := range subs {
		s.topics = append(s.topics, sub.Topic)
	}
	if subs[0].Payload != nil {
		s.claims = &claims{Payload: subs[0].Payload}
	}
	if err := p.index.add(s); err != nil {
		panic(err) // the index holds any number of templates
	}
	p.mu.Lock()
	p.members[s.id] = s
	p.mu.Unlock()
}

func (p *indexPresence) Leave(subs []Subscription) {
	if len(subs) == 0 {
		return
	}
	p.mu.Lock()
	s := p.members[subs[0].Subscriber]
	delete(p.members, subs[0].Subscriber)
	p.mu.Unlock()
	if s != nil {
		p.index.remove(s)
	}
}
