package web_test

import (
	"regexp"
	"testing"

	"github.com/herald-sse/herald/internal/cli/clitest"
)

// herald is a "herald serve" run by a test.
type herald struct {
	base   string // http://127.0.0.1:port
	token  string // the development setup's token, which may publish and subscribe anywhere
	stderr *clitest.Buffer
}

// serve runs "herald serve" with an in-memory history and the arguments,
// until the test ends. Without a key among args, it runs in development
// mode, and the token it prints is kept.
func serve(t *testing.T, args ...string) *herald {
	t.Helper()
	c := clitest.Serve(t, nil, append([]string{"-store", "memory"}, args...)...)
	h := &herald{base: c.Base, stderr: c.Stderr}
	if m := regexp.MustCompile(`(?m)^    (ey[\w-]+\.[\w-]+\.[\w-]+)$`).FindStringSubmatch(h.stderr.String()); m != nil {
		h.token = m[1]
	}
	return h
}
