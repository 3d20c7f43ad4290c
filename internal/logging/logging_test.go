package logging_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/internal/logging"
)

// Both formats write durations as text and keep the level asked for.
func TestNew(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, format, level string
		want                string // the line logged at info, without its time
	}{
		{"text", "text", "info", `level=INFO msg=closed duration=1.5s n=3`},
		{"json", "json", "info", `{"level":"INFO","msg":"closed","duration":"1.5s","n":3}`},
		{"json above info", "json", "warn", ``},
		{"unknown level is info", "text", "loud", `level=INFO msg=closed duration=1.5s n=3`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			l := logging.New(&buf, c.format, c.level)
			l.Debug("hidden")
			l.Info("closed", "duration", 1500*time.Millisecond, "n", 3)
			got := strings.TrimSpace(buf.String())
			if c.format == "json" && got != "" {
				var rec map[string]any
				if err := json.Unmarshal([]byte(got), &rec); err != nil {
					t.Fatalf("not JSON: %q", got)
				}
				got = strings.Replace(got, `"time":"`+rec["time"].(string)+`",`, "", 1)
			} else if got != "" {
				_, got, _ = strings.Cut(got, " ") // time=…
			}
			if got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}
