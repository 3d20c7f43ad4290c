package hub_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/yosida95/uritemplate/v3"
)

// Selectors and topics for the tests of matching: every kind of selector,
// templates of several shapes, strings that look like templates but do not
// parse, and topics equal to templates.
var (
	matchSelectors = []string{
		"*",
		"/t/a", "/t/{x}", // exact; a template that is also a topic below
		"/t/{x}/c", "/t/{x}{?q}", "/u/{a,b}", "{+any}", "/t/{x:3}", "{/p*}",
		"/t/{", "/t/{x", "{}", "/t/}{x}", // do not parse: exact
	}
	matchTopics = []string{
		"/t/a", "/t/b", "/t/a/c", "/t/", "/t/abcd", "/t/a?q=1", "/u/1,2", "/p/q/r", "other",
		"/t/{x}", "/t/{x}/c", "{+any}", "/t/{", "/t/{x", "{}", "/t/}{x}", // equal to selectors
	}
)

// refMatch is the rule of matching, read plainly from the protocol: "*"
// matches every topic, a selector matches the topic equal to it, and a URI
// template that parses matches the topics its regular expression does.
func refMatch(selector, topic string) bool {
	if selector == "*" || selector == topic {
		return true
	}
	t, err := uritemplate.New(selector)
	if err != nil || !strings.Contains(selector, "{") {
		return false
	}
	var re *regexp.Regexp
	func() {
		defer func() { _ = recover() }()
		re = t.Regexp()
	}()
	return re != nil && re.MatchString(topic)
}

// Live delivery and replay deliver exactly the same events, those the
// rule gives, for random selectors and topics, templates written as topics
// included.
func TestLiveAndReplayAgree(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	rng := rand.New(rand.NewPCG(17, 19))
	pick := func(from []string, most int) []string {
		out := make([]string, 1+rng.IntN(most))
		for i := range out {
			out[i] = from[rng.IntN(len(from))]
		}
		return out
	}

	const subscribers, updates = 16, 300
	sels := make([][]string, subscribers)
	live := make([]*stream, subscribers)
	for i := range sels {
		sels[i] = pick(matchSelectors, 3)
		live[i] = th.subscribe(t, url.Values{"topic": append(sels[i], "end")}.Encode(), nil)
	}
	topics := make([][]string, updates)
	ids := make([]string, updates)
	for i := range topics {
		topics[i] = pick(matchTopics, 2)
		id, err := th.Publish(context.Background(), hub.Update{Topics: topics[i], Data: "x"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	th.publish(t, "end", "end")

	for i, sel := range sels {
		var want []string
		for j, ts := range topics {
			if slices.ContainsFunc(sel, func(s string) bool {
				return slices.ContainsFunc(ts, func(topic string) bool { return refMatch(s, topic) })
			}) {
				want = append(want, ids[j])
			}
		}
		got := untilEnd(t, live[i])
		replay := untilEnd(t, th.subscribe(t, url.Values{"topic": append(sels[i], "end")}.Encode(), header("Last-Event-ID", hub.EarliestID)))
		if !slices.Equal(got, replay) {
			t.Errorf("selectors %q: live delivered %d events, replay %d; first difference: %s", sel, len(got), len(replay), differing(got, replay, ids, topics))
		}
		if !slices.Equal(got, want) {
			t.Errorf("selectors %q: delivered %d events, the rule gives %d; first difference: %s", sel, len(got), len(want), differing(got, want, ids, topics))
		}
	}
}

// differing describes the first event that one of a and b has and the
// other has not.
func differing(a, b, ids []string, topics [][]string) string {
	i := firstDiff(a, b)
	id := ""
	switch {
	case i < len(a) && (i >= len(b) || slices.Index(ids, a[i]) < slices.Index(ids, b[i])):
		id = a[i]
	case i < len(b):
		id = b[i]
	default:
		return "none"
	}
	return fmt.Sprintf("the event with topics %q", topics[slices.Index(ids, id)])
}

// untilEnd returns the IDs of the events of s before the one whose data is
// "end".
func untilEnd(t *testing.T, s *stream) []string {
	t.Helper()
	var ids []string
	for {
		ev := s.next(t)
		if ev.Data == "end" {
			return ids
		}
		ids = append(ids, ev.ID)
	}
}
