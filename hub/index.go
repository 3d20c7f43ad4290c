package hub

import "sync"

// index finds the subscribers of a topic without looking at the others:
// subscribers are grouped by selector, exact selectors in a map, the "*"
// selector in one group, and each distinct template in a group matched
// once per event (the result cached by the matcher). Adding and removing a
// subscriber costs O(1) per selector; an event costs O(its topics + the
// distinct templates + the subscribers it reaches).
//
// It is safe for concurrent use: the dispatcher reads under the read lock,
// subscribe and unsubscribe write under the write lock.
type index struct {
	match *matcher

	mu        sync.RWMutex
	exact     map[string]*group
	all       group
	templates map[string]*group
	count     int // subscribers
}

// group is the subscribers of one selector, in a slice for fast iteration.
type group struct {
	selector string
	members  []*membership
}

// membership is one subscriber in one group. It records its slot so that
// removal is a swap with the last member.
type membership struct {
	s     *subscriber
	g     *group
	index int
}

func newIndex(m *matcher) *index {
	return &index{match: m, exact: make(map[string]*group), all: group{selector: "*"}, templates: make(map[string]*group)}
}

// add registers s under each of its selectors.
func (x *index) add(s *subscriber) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s.members = make([]*membership, 0, len(s.topics))
	for _, sel := range s.topics {
		g := x.groupFor(sel)
		m := &membership{s: s, g: g, index: len(g.members)}
		g.members = append(g.members, m)
		s.members = append(s.members, m)
	}
	x.count++
}

// groupFor returns the group of a selector, creating it. x.mu is held.
func (x *index) groupFor(sel string) *group {
	if sel == "*" {
		return &x.all
	}
	groups := x.exact
	if isTemplate(sel) && x.match.template(sel) != nil {
		groups = x.templates
	}
	g := groups[sel]
	if g == nil {
		g = &group{selector: sel}
		groups[sel] = g
	}
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
		if len(g.members) == 0 && g != &x.all {
			delete(x.exact, g.selector)
			delete(x.templates, g.selector)
		}
	}
	s.members = nil
	x.count--
}

// each calls fn for every subscriber that has a selector matching one of
// the topics: for a subscriber with several matching selectors, once per
// selector (the caller deduplicates). It holds the read lock throughout, so
// fn must not call add or remove.
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
	for sel, g := range x.templates {
		for _, t := range topics {
			if x.match.matchTemplate(sel, t) {
				for _, m := range g.members {
					fn(m.s)
				}
				break
			}
		}
	}
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

// size returns the number of subscribers.
func (x *index) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}
