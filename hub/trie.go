package hub

import (
	"slices"
	"strings"
)

// prefixTrie holds the index's template groups by literal prefix, the text
// of a template before its first expression: it is a radix tree whose
// edges are labelled with strings. Every topic a template matches starts
// with the template's prefix, so the groups that may match a topic are
// those met walking down the tree along the topic's bytes, and a topic
// costs no work for a template whose prefix does not fit it. It is not
// safe for concurrent use: the index guards it.
type prefixTrie struct{ root trieNode }

type trieNode struct {
	label  string // what the node adds to its parent's prefix; empty only at the root
	parent *trieNode
	keys   []byte      // the first byte of each child's label, sorted
	kids   []*trieNode // in the order of keys
	groups []*group    // the groups whose prefix ends here
}

// insert adds g under its selector's prefix.
func (t *prefixTrie) insert(g *group) {
	n, rest := &t.root, g.sel.prefix
	for rest != "" {
		i, found := slices.BinarySearch(n.keys, rest[0])
		if !found {
			leaf := &trieNode{label: rest, parent: n}
			n.keys = slices.Insert(n.keys, i, rest[0])
			n.kids = slices.Insert(n.kids, i, leaf)
			n = leaf
			break
		}
		c := n.kids[i]
		l := commonPrefix(c.label, rest)
		if l < len(c.label) {
			// The prefix leaves the edge midway: split it there.
			mid := &trieNode{label: c.label[:l], parent: n, keys: []byte{c.label[l]}, kids: []*trieNode{c}}
			c.label, c.parent = c.label[l:], mid
			n.kids[i] = mid
			c = mid
		}
		n, rest = c, rest[l:]
	}
	g.node, g.slot = n, len(n.groups)
	n.groups = append(n.groups, g)
}

// remove takes g out, and the nodes that then lead to no group, so that
// the tree stays the size of the groups it holds.
func (t *prefixTrie) remove(g *group) {
	n := g.node
	last := n.groups[len(n.groups)-1]
	n.groups[g.slot], last.slot = last, g.slot
	n.groups[len(n.groups)-1] = nil
	n.groups = n.groups[:len(n.groups)-1]
	g.node = nil
	for n != &t.root && len(n.groups) == 0 {
		p := n.parent
		i, _ := slices.BinarySearch(p.keys, n.label[0])
		switch len(n.kids) {
		case 0: // a leaf: drop it, then look at its parent
			p.keys = slices.Delete(p.keys, i, i+1)
			p.kids = slices.Delete(p.kids, i, i+1)
			n = p
			continue
		case 1: // a mere bend: join it to its child
			c := n.kids[0]
			c.label, c.parent = n.label+c.label, p
			p.kids[i] = c
		}
		return
	}
}

// walk calls visit for each group whose prefix is a prefix of topic, the
// shorter prefixes first.
func (t *prefixTrie) walk(topic string, visit func(*group)) {
	n, rest := &t.root, topic
	for {
		for _, g := range n.groups {
			visit(g)
		}
		if rest == "" {
			return
		}
		i, found := slices.BinarySearch(n.keys, rest[0])
		if !found || !strings.HasPrefix(rest, n.kids[i].label) {
			return
		}
		n, rest = n.kids[i], rest[len(n.kids[i].label):]
	}
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
