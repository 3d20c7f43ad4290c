package fdlimit_test

import (
	"runtime"
	"testing"

	"github.com/herald-sse/herald/internal/fdlimit"
)

// On Linux the limit is always finite, and the process holds files open.
func TestCurrent(t *testing.T) {
	n, ok := fdlimit.Current()
	if runtime.GOOS == "linux" && (!ok || n < 3) {
		t.Fatalf("Current() = %d, %v; want a limit of at least 3", n, ok)
	}
}
