package hub

import (
	"testing"
	"testing/synctest"
)

func TestRunQueue(t *testing.T) {
	t.Parallel()
	q := newRunQueue()
	subs := make([]*subscriber, 5000)
	for i := range subs {
		subs[i] = &subscriber{id: string(rune(i))}
		q.push(subs[i]) // never blocks, however many
	}
	for i := range subs {
		s, ok := q.pop()
		if !ok || s != subs[i] {
			t.Fatalf("pop %d: %v, %v", i, s, ok)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		got := make(chan *subscriber)
		go func() {
			s, _ := q.pop()
			got <- s
		}()
		synctest.Wait() // the pop waits
		q.push(subs[7])
		if s := <-got; s != subs[7] {
			t.Fatal("a waiting pop got the wrong subscriber")
		}
	})
	q.push(subs[1])
	q.close()
	if s, ok := q.pop(); !ok || s != subs[1] {
		t.Fatal("close lost a queued subscriber")
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop after close and drain")
	}
}
