package hub

import "sync"

// runQueue holds the subscribers waiting for a pool worker, in order.
// Pushing never blocks: a subscriber is queued at most once at a time (its
// busy flag), so the queue never holds more than the subscribers, and
// callers may push while holding the index's lock.
type runQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*subscriber
	head   int
	closed bool
}

func newRunQueue() *runQueue {
	q := &runQueue{}
	q.cond.L = &q.mu
	return q
}

func (q *runQueue) push(s *subscriber) {
	q.mu.Lock()
	q.items = append(q.items, s)
	q.mu.Unlock()
	q.cond.Signal()
}

// pushAll queues subscribers in one go.
func (q *runQueue) pushAll(ss []*subscriber) {
	switch len(ss) {
	case 0:
		return
	case 1:
		q.push(ss[0])
		return
	}
	q.mu.Lock()
	q.items = append(q.items, ss...)
	q.mu.Unlock()
	q.cond.Broadcast()
}

// pop returns the next subscriber, waiting for one; false once the queue
// is closed and empty.
func (q *runQueue) pop() (*subscriber, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) {
		if q.closed {
			return nil, false
		}
		q.cond.Wait()
	}
	s := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return s, true
}

func (q *runQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// worker runs subscribers scheduled on the pool until the hub stops.
func (h *Hub) worker() {
	defer h.pool.Done()
	var scratch [][]byte
	for {
		s, ok := h.runq.pop()
		if !ok {
			return
		}
		s.run(false, &scratch)
	}
}
