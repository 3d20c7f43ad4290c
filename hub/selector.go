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
//     matches "https://example.com/books/1", and the topic equal to it,
//     like any selector. A template that does not parse (or that the
//     library cannot compile) matches only the topic equal to it.
//
// Templates are compiled to regular expressions of Go's regexp package,
// whose matching time is linear in the topic's length whatever the
// template: a hostile template cannot stall the hub.

// selectorKind says how a selector matches.
type selectorKind uint8

const (
	exactKind    selectorKind = iota // the topic equal to it
	allKind                          // "*": every topic
	templateKind                     // a URI template: the topics it can expand to
)

// selector is a topic selector compiled. Its matches method is the only
// place where the rules of matching live: live delivery, replay, the
// authorization of private updates and of publications, ended topics and
// the subscriptions API all match through it, so they cannot disagree. A
// selector is immutable once compiled, and safe for concurrent use.
type selector struct {
	raw  string
	kind selectorKind
	// A template's literal text before its first expression and after its
	// last: every topic it matches starts and ends with them, as the
	// library anchors its regular expression and quotes its literals.
	prefix, suffix string
	// mid is the longest literal text between two of a template's
	// expressions, which every topic it matches holds between its prefix
	// and its suffix: a test far cheaper than the regexp, which rules out
	// most templates that share a topic's prefix.
	mid string
	re  *regexp.Regexp // a template's
}

// compileSelector compiles raw. A string holding "{" that is not a
// template the library can compile is an exact selector.
func compileSelector(raw string) selector {
	if raw == "*" {
		return selector{raw: raw, kind: allKind}
	}
	if !mayBeTemplate(raw) {
		return selector{raw: raw}
	}
	re := compileTemplate(raw)
	if re == nil {
		return selector{raw: raw}
	}
	first, last := strings.IndexByte(raw, '{'), strings.LastIndexByte(raw, '}')
	sel := selector{raw: raw, kind: templateKind, prefix: raw[:first], suffix: raw[last+1:], re: re}
	// The literals between expressions: after each "}", up to the next "{".
	for rest := raw[first:last]; ; {
		i := strings.IndexByte(rest, '}')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		lit, _, _ := strings.Cut(rest, "{")
		if len(lit) > len(sel.mid) {
			sel.mid = lit
		}
	}
	return sel
}

// mayBeTemplate reports whether raw may be a URI template: whether it
// holds an expression's opening brace.
func mayBeTemplate(raw string) bool { return strings.Contains(raw, "{") }

// matches reports whether the selector matches topic.
func (s *selector) matches(topic string) bool {
	switch {
	case s.kind == allKind || topic == s.raw:
		return true
	case s.kind == exactKind:
		return false
	}
	if len(topic) < len(s.prefix)+len(s.suffix) || !strings.HasPrefix(topic, s.prefix) || !strings.HasSuffix(topic, s.suffix) {
		return false
	}
	return strings.Contains(topic[len(s.prefix):len(topic)-len(s.suffix)], s.mid) && s.re.MatchString(topic)
}

// exact reports whether the selector matches only the topic equal to it.
func (s *selector) exact() bool { return s.kind == exactKind }

func compileTemplate(raw string) (re *regexp.Regexp) {
	defer func() {
		if recover() != nil {
			re = nil // the library panics on a regexp it built wrong: treat as no template
		}
	}()
	t, err := uritemplate.New(raw)
	if err != nil {
		return nil
	}
	return t.Regexp()
}

// matchAny reports whether any of the selectors matches any of the topics.
func matchAny(selectors []*selector, topics []string) bool {
	for _, s := range selectors {
		for _, t := range topics {
			if s.matches(t) {
				return true
			}
		}
	}
	return false
}

// DefaultMatchCacheSize is the default bound on the matcher's caches of
// the selectors of tokens' claims: of (template, topic) results, and a
// tenth of it of compiled templates. Enough for the working set of a busy
// hub, small enough (a few tens of MiB) that no flood of distinct topics
// makes the hub's memory grow with it.
const DefaultMatchCacheSize = 100_000

// matcher matches the selectors of tokens' claims, which come as strings
// with each request, against topics: it keeps the templates it compiled,
// and its results, in bounded caches. (Subscriptions' selectors are
// compiled once, and held by the index.) It is safe for concurrent use.
type matcher struct {
	templates cache[string, selector]
	results   cache[matchKey, bool]
}

type matchKey struct{ selector, topic string }

func newMatcher(size int) *matcher {
	if size <= 0 {
		size = DefaultMatchCacheSize
	}
	return &matcher{
		templates: newCache[string, selector](max(size/10, 16)),
		results:   newCache[matchKey, bool](size),
	}
}

// match reports whether the selector raw matches topic.
func (m *matcher) match(raw, topic string) bool {
	if !mayBeTemplate(raw) {
		s := compileSelector(raw) // nothing to compile
		return s.matches(topic)
	}
	k := matchKey{raw, topic}
	if ok, found := m.results.get(k); found {
		return ok
	}
	s, found := m.templates.get(raw)
	if !found {
		s = compileSelector(raw)
		m.templates.put(raw, s)
	}
	ok := s.matches(topic)
	m.results.put(k, ok)
	return ok
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
