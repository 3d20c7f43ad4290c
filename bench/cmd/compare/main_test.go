package main

import (
	"strings"
	"testing"
)

func TestReplaceBlock(t *testing.T) {
	doc := "# Benchmarks\n\nintro\n\n<!-- peers:fanout -->\nold table\n\nmore old\n<!-- /peers:fanout -->\n\n<!-- peers:conns -->\nconns table\n<!-- /peers:conns -->\ntail\n"
	got, err := replaceBlock([]byte(doc), "fanout", []byte("\n| new | table |\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\nintro\n\n<!-- peers:fanout -->\n\n| new | table |\n\n<!-- /peers:fanout -->\n\n<!-- peers:conns -->\nconns table\n<!-- /peers:conns -->\ntail\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Writing again gives the same document.
	again, err := replaceBlock(got, "fanout", []byte("| new | table |"))
	if err != nil || string(again) != want {
		t.Errorf("a second write changed the document: %v\n%s", err, again)
	}
}

func TestReplaceBlockMissing(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"no block\n", `no line "<!-- peers:fanout -->"`},
		{"<!-- peers:fanout -->\nunclosed\n", `not closed by a line "<!-- /peers:fanout -->"`},
		// A marker must be a line of its own, not text that mentions it.
		{"see `<!-- peers:fanout -->` below\n<!-- /peers:fanout -->\n", `no line "<!-- peers:fanout -->"`},
		// Another suite's block is not this one's.
		{"<!-- peers:fanout-x -->\n<!-- /peers:fanout-x -->\n", `no line "<!-- peers:fanout -->"`},
	} {
		_, err := replaceBlock([]byte(tc.doc), "fanout", []byte("x"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %s", tc.doc, err, tc.want)
		}
	}
}

func TestRelativeTo(t *testing.T) {
	// bench/peers.sh runs in bench/ and writes ../BENCHMARKS.md and scale.svg.
	got, err := relativeTo("../BENCHMARKS.md", "scale.svg")
	if err != nil || !strings.HasSuffix(got, "/scale.svg") || strings.HasPrefix(got, "..") {
		t.Errorf("got %q, %v; want a path down into this directory", got, err)
	}
	if got, err := relativeTo("doc/x.md", "doc/img/c.svg"); err != nil || got != "img/c.svg" {
		t.Errorf("got %q, %v; want img/c.svg", got, err)
	}
}
