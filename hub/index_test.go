package hub

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The index reaches exactly the subscribers that have a selector matching
// the topic, while subscribers come and go, template groups are created
// and die, and verdicts are kept for topics that many templates fit.
func TestIndexAgreesWithSelectors(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	sels := []string{"*", "/a/b", "/a/{x}", "/a/{x}/b", "/a/b/{y}", "{+all}", "/a{/p*}", "/a/{", "/a/{x}{?q}"}
	topics := []string{"/a/b", "/a/c", "/a/b/c", "/a/{x}", "/a/{", "/a/c/b", "/a/b?q=1", "/v/k/n3", "/v/k/n30", "/w"}
	for i := range 3 * verdictFrom {
		sels = append(sels, fmt.Sprintf("/v/{x}/n%d", i)) // many templates that fit /v/…
	}
	compiled := map[string]selector{}
	for _, raw := range sels {
		compiled[raw] = compileSelector(raw)
	}
	x := newIndex(math.MaxInt)
	var subs []*subscriber
	for step := range 10_000 {
		switch r := rng.IntN(10); {
		case r < 3 || len(subs) < 40:
			s := &subscriber{id: fmt.Sprint(step)}
			for range 1 + rng.IntN(3) {
				s.topics = append(s.topics, sels[rng.IntN(len(sels))])
			}
			if err := x.add(s); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		case r < 6:
			i := rng.IntN(len(subs))
			x.remove(subs[i])
			subs = slices.Delete(subs, i, i+1)
		default:
			topic := topics[rng.IntN(len(topics))]
			got := map[*subscriber]int{}
			x.each([]string{topic}, func(s *subscriber) { got[s]++ })
			for _, s := range subs {
				want := 0
				for _, raw := range s.topics {
					if sel := compiled[raw]; sel.matches(topic) {
						want++
					}
				}
				if got[s] != want {
					t.Fatalf("step %d: topic %q reached subscriber %v %d times, want %d", step, topic, s.topics, got[s], want)
				}
			}
		}
	}
	if len(x.verdicts.byTopic) == 0 {
		t.Fatal("no verdict was kept: the test does not cover them")
	}
	for _, s := range subs {
		x.remove(s)
	}
	if len(x.templates) != 0 || len(x.exact) != 0 || len(x.order) != 0 || len(x.prefixes.root.kids) != 0 || len(x.prefixes.root.groups) != 0 {
		t.Fatalf("an empty index holds %d template groups, %d exact, %d in order, %d children at the trie's root",
			len(x.templates), len(x.exact), len(x.order), len(x.prefixes.root.kids))
	}
}

// A topic that many templates fit costs, when it comes again, only the
// templates created since.
func TestIndexKeepsVerdicts(t *testing.T) {
	t.Parallel()
	x := newIndex(math.MaxInt)
	add := func(sel string) *subscriber {
		s := &subscriber{topics: []string{sel}}
		if err := x.add(s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for i := range 2 * verdictFrom {
		add(fmt.Sprintf("/v/{x}/n%d", i))
	}
	add("/w/{x}")
	cost := func(topic string, want int) uint64 {
		t.Helper()
		before, n := x.evaluated.Load(), 0
		x.each([]string{topic}, func(*subscriber) { n++ })
		if n != want {
			t.Fatalf("%q reached %d subscribers, want %d", topic, n, want)
		}
		return x.evaluated.Load() - before
	}
	if c := cost("/v/k/n3", 1); c != 2*verdictFrom {
		t.Fatalf("the first event evaluated %d templates, want the %d whose prefix fits", c, 2*verdictFrom)
	}
	if c := cost("/v/k/n3", 1); c != 0 {
		t.Fatalf("a repeated topic evaluated %d templates, want 0", c)
	}
	late := add("/v/k/{n}")
	add("/w/{y}")
	if c := cost("/v/k/n3", 2); c != 1 {
		t.Fatalf("after a template that fits was added, %d evaluated, want 1", c)
	}
	x.remove(late)
	if c := cost("/v/k/n3", 1); c != 0 {
		t.Fatalf("after a template left, %d evaluated, want 0", c)
	}
	if c := cost("/w/1", 2); c != 2 {
		t.Fatalf("a topic few templates fit evaluated %d, want 2", c)
	}
}
