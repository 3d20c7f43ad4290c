package hub

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
