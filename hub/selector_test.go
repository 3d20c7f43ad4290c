package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func signHS256(t *testing.T, k *Key, exp int64) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp}).SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatch(t *testing.T) {
	t.Parallel()
	m := newMatcher(0)
	for _, c := range []struct {
		selector, topic string
		want            bool
	}{
		{"*", "", true},
		{"a", "a", true},
		{"a", "b", false},
		{"https://example.com/books/{id}", "https://example.com/books/1", true},
		{"https://example.com/books/{id}", "https://example.com/books/1/pages", false},
		{"https://example.com/books/{id}", "https://example.com/books/", true},
		{"https://example.com/{+rest}", "https://example.com/a/b?c", true},
		{"/users/{id}{?tab}", "/users/1?tab=x", true},
		{"{", "{", true},
		{"{", "x", false},
	} {
		if got := m.match(c.selector, c.topic); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.selector, c.topic, got, c.want)
		}
		// From the cache, the same.
		if got := m.match(c.selector, c.topic); got != c.want {
			t.Errorf("cached match(%q, %q) = %v, want %v", c.selector, c.topic, got, c.want)
		}
	}
}

// The caches stay within their bound whatever the stream of topics: here
// 10,000 distinct ones, through twenty generations of the results' cache.
func TestMatchCacheBounded(t *testing.T) {
	t.Parallel()
	m := newMatcher(1000)
	for i := range 10_000 {
		m.match("https://example.com/{id}", "https://example.com/"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+string(rune(i)))
	}
	m.results.mu.Lock()
	n := len(m.results.cur) + len(m.results.old)
	m.results.mu.Unlock()
	if n > 1000 {
		t.Fatalf("%d cached results, bound 1000", n)
	}
}

// FuzzMatch: any selector and topic, no panic; the rules that hold
// whatever the template language; and the matcher of claims, the
// expression alone and the index all agree with the compiled selector.
func FuzzMatch(f *testing.F) {
	f.Add("https://example.com/{id}", "https://example.com/1")
	f.Add("{+a}{#b}{.c}{/d}{;e}{?f}{&g}", "x")
	f.Add("{a:3}{b*}", "abc")
	f.Add("{", "{")
	f.Add("/a/{x}", "/a/{x}")
	f.Add("/a/{x}/b", "/a/c/b")
	f.Add("/users/{id}/n5{?q}", "/users/7/n5?q=1")
	f.Add("/users/{id}/n5{?q}", "/users/7/n6?q=1")
	f.Add("{a}x{b}y{c}", "1x2y3")
	f.Add("ab{x}b", "ab")
	m := newMatcher(100)
	f.Fuzz(func(t *testing.T, selector, topic string) {
		sel := compileSelector(selector)
		got := sel.matches(topic)
		if m.match(selector, topic) != got {
			t.Fatal("the matcher of claims disagrees with the selector")
		}
		if selector == topic && !got {
			t.Fatal("a selector does not match the topic equal to it")
		}
		if selector == "*" && !got {
			t.Fatal("* did not match")
		}
		if !strings.Contains(selector, "{") && selector != "*" && got != (selector == topic) {
			t.Fatal("a plain selector matched another topic")
		}
		if sel.kind == templateKind && got != (selector == topic || sel.re.MatchString(topic)) {
			t.Fatal("the literal filters (prefix, suffix, middle) decided otherwise than the expression")
		}
		x := newIndex(1)
		if err := x.add(&subscriber{topics: []string{selector}}); err != nil {
			t.Fatal(err)
		}
		reached := 0
		x.each([]string{topic}, func(*subscriber) { reached++ })
		if (reached > 0) != got {
			t.Fatalf("the index reached %d subscribers, the selector says %v", reached, got)
		}
	})
}

// A verified token is remembered, and its expiry still applies.
func TestVerifiedCache(t *testing.T) {
	key, err := NewKey("HS256", []byte("a key for the verified-token cache test"))
	if err != nil {
		t.Fatal(err)
	}
	tok := signHS256(t, key, time.Now().Add(2*time.Second).Unix())
	for range 2 {
		if _, err := verify(key, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := key.verified.get(tok); !ok {
		t.Fatal("the token was not remembered")
	}
	c, _ := key.verified.get(tok)
	c.expires = time.Now().Add(-time.Minute) // as if its time had come
	if _, err := verify(key, tok); err == nil {
		t.Fatal("an expired token passed from the cache")
	}
}
