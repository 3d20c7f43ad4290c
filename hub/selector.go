package hub

import (
	"regexp"
	"strings"
	"sync"

	"github.com/yosida95/uritemplate/v3"
)

// A topic selector, in a subscription or in a token's claims, is one of:
//
//   - "*", which matches every topic;
//   - a string, which matches the topic equal to it, byte for byte;
//   - an RFC 6570 URI template (a string holding "{"), which matches every
//     topic the template can expand to: "https://example.com/books/{id}"
//     matches "https://example.com/books/1". A template that does not parse
//     matches only the topic equal to it.
//
// Templates are compiled to regular expressions of Go's regexp package,
// whose matching time is linear in the topic's length whatever the
// template: a hostile template cannot stall the hub.

// DefaultMatchCacheSize is the default bound on the matcher's caches of
// compiled templates and of (template, topic) results: enough for the
// working set of a busy hub, small enough (a few MiB) that no flood of
// distinct topics makes the hub's memory grow with it.
const DefaultMatchCacheSize = 100_000

// matcher matches topics against selectors, caching compiled templates and
// results. It is safe for concurrent use.
type matcher struct {
	templates cache[string, *regexp.Regexp] // nil: not a valid template
	results   cache[matchKey, bool]
}

type matchKey struct{ selector, topic string }

func newMatcher(size int) *matcher {
	if size <= 0 {
		size = DefaultMatchCacheSize
	}
	return &matcher{
		templates: newCache[string, *regexp.Regexp](max(size/10, 16)),
		results:   newCache[matchKey, bool](size),
	}
}

func isTemplate(selector string) bool { return strings.Contains(selector, "{") }

// match reports whether selector matches topic.
func (m *matcher) match(selector, topic string) bool {
	if selector == "*" || selector == topic {
		return true
	}
	if !isTemplate(selector) {
		return false
	}
	return m.matchTemplate(selector, topic)
}

// matchTemplate reports whether the template selector matches topic.
func (m *matcher) matchTemplate(selector, topic string) bool {
	k := matchKey{selector, topic}
	if ok, found := m.results.get(k); found {
		return ok
	}
	re := m.template(selector)
	ok := re != nil && re.MatchString(topic)
	m.results.put(k, ok)
	return ok
}

// template returns the compiled form of a template selector, or nil when it
// does not parse.
func (m *matcher) template(selector string) *regexp.Regexp {
	if re, found := m.templates.get(selector); found {
		return re
	}
	re := compileTemplate(selector)
	m.templates.put(selector, re)
	return re
}

func compileTemplate(selector string) (re *regexp.Regexp) {
	defer func() {
		if recover() != nil {
			re = nil // the library panics on a regexp it built wrong: treat as no template
		}
	}()
	t, err := uritemplate.New(selector)
	if err != nil {
		return nil
	}
	return t.Regexp()
}

// matchAny reports whether any of the selectors matches any of the topics.
func (m *matcher) matchAny(selectors, topics []string) bool {
	for _, s := range selectors {
		for _, t := range topics {
			if m.match(s, t) {
				return true
			}
		}
	}
	return false
}

// cache is a bounded map approximating least-recently-used eviction with
// two generations: lookups promote entries from the old generation to the
// new; when the new one is full it becomes the old one, and the old one is
// dropped. It is safe for concurrent use.
type cache[K comparable, V any] struct {
	mu       sync.Mutex
	size     int // entries per generation
	cur, old map[K]V
}

func newCache[K comparable, V any](size int) cache[K, V] {
	return cache[K, V]{size: max(size/2, 1), cur: make(map[K]V)}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	if ok {
		c.putLocked(k, v)
	}
	return v, ok
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, v)
}

func (c *cache[K, V]) putLocked(k K, v V) {
	if len(c.cur) >= c.size {
		c.old, c.cur = c.cur, make(map[K]V, c.size)
	}
	c.cur[k] = v
}
