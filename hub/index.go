package hub

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// index finds the subscribers of a topic without looking at the others.
// Subscribers are grouped by selector: exact selectors in a map, "*" in
// one group, and each distinct template in a group that owns its compiled
// form for as long as a subscriber holds it. Template groups are found by
// their literal prefix (prefixTrie), so that an event evaluates only the
// templates whose prefix fits one of its topics; and when many do, the
// verdict (the groups that match) is kept for the topic, so that the topic
// costs, when it comes again, only the groups that match it.
//
// Adding a subscriber costs O(its selectors), and the compilation of the
// templates no one held; removing it, O(its selectors). An event costs
// O(its topics + the templates whose prefix fits them + the subscribers it
// reaches), or for a topic seen recently that many templates fit,
// O(the groups that match it + the template groups created since).
//
// It is safe for concurrent use: the dispatcher reads under the read lock,
// subscribe and unsubscribe write under the write lock.
type index struct {
	// maxTemplates bounds the template groups (see admit).
	maxTemplates int

	mu        sync.RWMutex
	exact     map[string]*group // exact selectors, strings that do not compile as templates included
	all       group
	templates map[string]*group
	prefixes  prefixTrie   // the template groups
	count     int          // subscribers
	reserved  atomic.Int64 // room admit holds for templates until join or cancel
	created   uint64       // template groups ever created: the last one's seq
	order     []*group     // the template groups, in the order of creation; dead ones until compacted
	dead      int          // the dead groups in order

	// Matching templates with topics, which each does under the read lock.
	matchMu   sync.Mutex
	verdicts  verdicts
	found     []*group      // scratch: the groups a walk found matching
	pass      uint64        // each's calls, so that a group is visited once per call
	evaluated atomic.Uint64 // templates matched with a topic, ever: for the tests
}

// group is the subscribers of one selector, in a slice for fast iteration.
type group struct {
	sel     selector
	members []*membership

	// Template groups only. node and slot place the group in the trie,
	// and seq in the order of creation; dead marks a group that left the
	// index, which verdicts may still hold. Guarded by the index's lock.
	node *trieNode
	slot int
	seq  uint64
	dead bool
	// seen is the pass of each that last visited the group, under matchMu.
	seen uint64
}

// membership is one subscriber in one group. It records its slot so that
// removal is a swap with the last member.
type membership struct {
	s     *subscriber
	g     *group
	index int
}

func newIndex(maxTemplates int) *index {
	return &index{
		maxTemplates: maxTemplates,
		exact:        make(map[string]*group),
		all:          group{sel: compileSelector("*")},
		templates:    make(map[string]*group),
	}
}

// admission is a subscription's selectors, compiled, and the room held in
// the index for its templates: what admit prepares for join.
type admission struct {
	sels []*selector
	room int64
}

// templatesRetryAfter is the Retry-After of a subscription refused for
// want of room for its templates: room comes back as subscribers leave.
const templatesRetryAfter = 10 // seconds

// admit prepares a subscription to selectors for join. The templates no
// subscriber holds must fit in the room the index has left under
// maxTemplates: otherwise admit refuses the subscription (503,
// too_many_templates) before it compiles anything; templates already held
// cost nothing and are always admitted. (A selector holding "{" counts as
// a template until it is compiled.) Else it compiles them, outside the
// lock, and holds their room until join or cancel.
func (x *index) admit(selectors []string) (admission, error) {
	a := admission{sels: make([]*selector, len(selectors))}
	own := make([]selector, len(selectors))
	var fresh map[string]int // a new template's first place in selectors
	x.mu.RLock()
	for i, raw := range selectors {
		if g := x.groupOf(raw); g != nil {
			a.sels[i] = &g.sel // immutable, even once the group is gone
			continue
		}
		if !mayBeTemplate(raw) {
			own[i] = compileSelector(raw)
			a.sels[i] = &own[i]
			continue
		}
		if fresh == nil {
			fresh = make(map[string]int)
		}
		if _, dup := fresh[raw]; !dup {
			fresh[raw] = i
		}
	}
	held, n := int64(len(x.templates)), int64(len(fresh))
	for n > 0 {
		r := x.reserved.Load()
		if n > int64(x.maxTemplates)-held-r {
			x.mu.RUnlock()
			return admission{}, &Error{Status: http.StatusServiceUnavailable, Code: codeTooManyTemplates, retryAfter: templatesRetryAfter,
				Message: fmt.Sprintf("the hub's subscribers hold %d distinct URI templates of the %d it allows (max-templates); this subscription would add %d", held+r, x.maxTemplates, n)}
		}
		if x.reserved.CompareAndSwap(r, r+n) {
			break
		}
	}
	x.mu.RUnlock()
	a.room = n
	for i, raw := range selectors {
		if a.sels[i] != nil {
			continue
		}
		if first := fresh[raw]; first < i {
			a.sels[i] = a.sels[first]
			continue
		}
		own[i] = compileSelector(raw)
		a.sels[i] = &own[i]
	}
	return a, nil
}

// groupOf returns the group of a selector, or nil. x.mu is held.
func (x *index) groupOf(raw string) *group {
	if raw == "*" {
		return &x.all
	}
	if g := x.exact[raw]; g != nil {
		return g
	}
	return x.templates[raw]
}

// cancel gives back the room of an admission that will not join.
func (x *index) cancel(a admission) { x.reserved.Add(-a.room) }

// join registers s under the selectors of a, an admission of its topics,
// and gives back a's room. s.sels holds the groups' compiled selectors
// from then on.
func (x *index) join(s *subscriber, a admission) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s.members = make([]*membership, 0, len(a.sels))
	s.sels = make([]*selector, 0, len(a.sels))
	for _, sel := range a.sels {
		g := x.groupFor(sel)
		m := &membership{s: s, g: g, index: len(g.members)}
		g.members = append(g.members, m)
		s.members = append(s.members, m)
		s.sels = append(s.sels, &g.sel)
	}
	x.count++
	x.reserved.Add(-a.room)
}

// add registers s under its selectors, after admit: it fails as admit
// does, having done nothing.
func (x *index) add(s *subscriber) error {
	a, err := x.admit(s.topics)
	if err != nil {
		return err
	}
	x.join(s, a)
	return nil
}

// groupFor returns the group of a compiled selector, creating it. x.mu is
// held.
func (x *index) groupFor(sel *selector) *group {
	if g := x.groupOf(sel.raw); g != nil {
		return g
	}
	g := &group{sel: *sel}
	if sel.kind != templateKind {
		x.exact[sel.raw] = g
		return g
	}
	x.created++
	g.seq = x.created
	x.templates[sel.raw] = g
	x.prefixes.insert(g)
	x.order = append(x.order, g)
	return g
}

// remove unregisters s. It is idempotent.
func (x *index) remove(s *subscriber) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s.members == nil {
		return
	}
	for _, m := range s.members {
		g := m.g
		last := g.members[len(g.members)-1]
		g.members[m.index], last.index = last, m.index
		g.members[len(g.members)-1] = nil
		g.members = g.members[:len(g.members)-1]
		if len(g.members) > 0 || g == &x.all {
			continue
		}
		if g.sel.kind != templateKind {
			delete(x.exact, g.sel.raw)
			continue
		}
		delete(x.templates, g.sel.raw)
		x.prefixes.remove(g)
		g.dead = true
		if x.dead++; x.dead > len(x.order)/2 {
			x.order = slices.DeleteFunc(x.order, func(g *group) bool { return g.dead })
			x.dead = 0
		}
	}
	s.members = nil
	x.count--
}

// each calls fn for every subscriber that has a selector matching one of
// the topics: for a subscriber with several matching selectors, once per
// selector (the caller deduplicates). It holds the read lock throughout,
// and the matching lock while it visits template groups, so fn must not
// call add or remove.
func (x *index) each(topics []string, fn func(*subscriber)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, m := range x.all.members {
		fn(m.s)
	}
	for _, t := range topics {
		if g := x.exact[t]; g != nil {
			for _, m := range g.members {
				fn(m.s)
			}
		}
	}
	if len(x.templates) == 0 {
		return
	}
	x.matchMu.Lock()
	defer x.matchMu.Unlock()
	x.pass++
	for _, t := range topics {
		x.matching(t, func(g *group) {
			if g.seen == x.pass {
				return // matched another topic already
			}
			g.seen = x.pass
			for _, m := range g.members {
				fn(m.s)
			}
		})
	}
}

// Keeping verdicts (see index.matching).
const (
	// verdictFrom is the fewest templates a topic must fit for its
	// verdict to be kept: for fewer, matching them again costs less than
	// keeping it.
	verdictFrom = 16
	// maxVerdicts and maxVerdictGroups bound the verdicts kept, in topics
	// and in groups held by them all (a pointer each).
	maxVerdicts      = 4096
	maxVerdictGroups = 1 << 18
)

// verdict is the template groups that match a topic, among those created
// up to the group seq. Groups that left the index since are dropped from
// it when it is next used.
type verdict struct {
	seq    uint64
	groups []*group
}

// verdicts keeps the verdicts of topics, within bounds: past one, it
// starts again empty.
type verdicts struct {
	byTopic map[string]*verdict
	groups  int
}

// keep keeps v for topic, or notes that v, kept, has grown by added
// groups.
func (vs *verdicts) keep(topic string, v *verdict, added int) {
	_, kept := vs.byTopic[topic]
	if vs.byTopic == nil || !kept && len(vs.byTopic) >= maxVerdicts || vs.groups+added > maxVerdictGroups {
		vs.byTopic, vs.groups = make(map[string]*verdict), len(v.groups)
		vs.byTopic[topic] = v
		return
	}
	vs.byTopic[topic] = v
	vs.groups += added
}

// matching calls visit for every template group that matches topic. When
// the topic's verdict is kept, it matches only the groups created since
// the verdict whose prefix fits the topic; otherwise those the trie gives,
// then keeps the verdict if they were many. x.mu is read-held, and
// x.matchMu held.
func (x *index) matching(topic string, visit func(*group)) {
	evaluated := 0
	match := func(g *group, found []*group) []*group {
		evaluated++
		if g.sel.matches(topic) {
			found = append(found, g)
		}
		return found
	}
	v := x.verdicts.byTopic[topic]
	if v == nil {
		found := x.found[:0]
		x.prefixes.walk(topic, func(g *group) { found = match(g, found) })
		x.evaluated.Add(uint64(evaluated))
		for _, g := range found {
			visit(g)
		}
		if evaluated >= verdictFrom {
			x.verdicts.keep(topic, &verdict{seq: x.created, groups: slices.Clone(found)}, len(found))
		}
		clear(found)
		x.found = found[:0]
		return
	}
	if v.seq < x.created {
		had := len(v.groups)
		i, _ := slices.BinarySearchFunc(x.order, v.seq+1, func(g *group, seq uint64) int { return cmp.Compare(g.seq, seq) })
		for _, g := range x.order[i:] {
			if !g.dead && strings.HasPrefix(topic, g.sel.prefix) {
				v.groups = match(g, v.groups)
			}
		}
		v.seq = x.created
		x.evaluated.Add(uint64(evaluated))
		x.verdicts.keep(topic, v, len(v.groups)-had)
	}
	live := v.groups[:0]
	for _, g := range v.groups {
		if !g.dead {
			live = append(live, g)
			visit(g)
		}
	}
	x.verdicts.groups -= len(v.groups) - len(live)
	clear(v.groups[len(live):])
	v.groups = live
}

// subscribers calls fn for every subscriber once, under the read lock.
func (x *index) subscribers(fn func(*subscriber)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	seen := make(map[*subscriber]bool, x.count)
	visit := func(g *group) {
		for _, m := range g.members {
			if !seen[m.s] {
				seen[m.s] = true
				fn(m.s)
			}
		}
	}
	visit(&x.all)
	for _, g := range x.exact {
		visit(g)
	}
	for _, g := range x.templates {
		visit(g)
	}
}

// group calls fn with the members of the group of the selector raw, if a
// subscriber holds it, under the read lock.
func (x *index) group(raw string, fn func([]*membership)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if g := x.groupOf(raw); g != nil {
		fn(g.members)
	}
}

// size returns the number of subscribers.
func (x *index) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}
