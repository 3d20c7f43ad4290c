package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/boltstore"
)

// The store reports its commits to the hub: the events of each, through
// hub.CommitReporter.
func TestCommitStats(t *testing.T) {
	t.Parallel()
	l, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "history.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var log hub.Log = l
	cr, ok := log.(hub.CommitReporter)
	if !ok {
		t.Fatal("the store is not a hub.CommitReporter")
	}
	ev := func(id string) *hub.Event { return &hub.Event{Update: hub.Update{ID: id, Topics: []string{"t"}}} }
	if err := l.Append(t.Context(), ev("a"), ev("b"), ev("c")); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(t.Context(), ev("d")); err != nil {
		t.Fatal(err)
	}
	st := cr.CommitStats()
	if st.Sizes.Count != 2 || st.Sizes.Sum != 4 || st.Failed != 0 {
		t.Fatalf("commit stats %+v, want 2 commits of 4 events", st)
	}
	// 1 event in the bucket of 1, 3 in that of 4.
	if st.Sizes.Counts[0] != 1 || st.Sizes.Counts[2] != 1 {
		t.Fatalf("buckets %v of bounds %v", st.Sizes.Counts, st.Sizes.Bounds)
	}
}
