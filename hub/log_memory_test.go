package hub_test

import (
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
)

func TestMemoryLog(t *testing.T) {
	t.Parallel()
	hubtest.Run(t, hubtest.Suite{
		New: func(t *testing.T, o hubtest.Options) hub.Log {
			size := o.Size
			if size == 0 {
				size = 500_000
			}
			return hub.NewMemoryLog(hub.MemoryLogConfig{Size: size, MaxAge: o.MaxAge})
		},
		Bubble: true,
	})
}
