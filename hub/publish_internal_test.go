package hub

import (
	"net/url"
	"slices"
	"testing"
)

// parseUpdate reads a form as url.ParseQuery does: the same fields, the
// same first values, and an error for the same bodies.
func FuzzParseUpdate(f *testing.F) {
	for _, s := range []string{
		"topic=a&data=hello",
		"topic=a&topic=b&id=x&type=t&retry=10&private=on&end",
		"data=a&data=b&id=1&id=2&type=&type=x&retry=1&retry=2",
		"topic=%0a&id=%0d&data=a+b%2Bc",
		"topic=a;b", "data=%zz", "%zz=1", "=&&topic&private=", "end=&private&data",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		u, retry, err := parseUpdate(body, 0)
		form, want := url.ParseQuery(body)
		if (err != nil) != (want != nil) {
			t.Fatalf("%q: error %v, url.ParseQuery's %v", body, err, want)
		}
		if err != nil {
			return
		}
		if !slices.Equal(u.Topics, form["topic"]) || u.Data != form.Get("data") || u.ID != form.Get("id") ||
			u.Type != form.Get("type") || retry != form.Get("retry") ||
			u.Private != form.Has("private") || u.End != form.Has("end") {
			t.Fatalf("%q: got %+v retry %q, url.ParseQuery has %v", body, u, retry, form)
		}
	})
}

func TestParseUpdateKeepsEnoughTopics(t *testing.T) {
	u, _, err := parseUpdate("topic=a&topic=b&topic=c&topic=d", 2)
	if err != nil || len(u.Topics) != 3 {
		t.Fatalf("topics %v, error %v: want 3, one past the bound", u.Topics, err)
	}
}
