package sse_test

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/sse"
)

// The parsing cases of the web-platform-tests eventsource/ directory and the
// spec's and LaunchDarkly's extra cases, numbered as in
// ../shared/reference/wpt-eventsource-cases.md. Each is decoded whole, in
// 1-byte and in 2-byte chunks, and, where the case fixes them, in its own
// chunks. A case of several connections models a client: it decodes each
// in turn with the last event ID of the one before.

// ev builds an expected event. An empty type is the default, "message".
func ev(typ, data, lastID string) sse.Event {
	return sse.Event{Type: typ, Data: data, ID: lastID}
}

func evr(typ, data, lastID string, retry time.Duration) sse.Event {
	return sse.Event{Type: typ, Data: data, ID: lastID, Retry: retry}
}

type corpusCase struct {
	name string
	// conns are the bodies of successive connections; usually one.
	conns []string
	// chunks, when set, is the single connection's body as the case cuts it.
	chunks []string
	want   outcome
}

var x2048 = strings.Repeat("x", 2048)

var corpus = []corpusCase{
	{name: "01_onmessage", conns: []string{"data: data\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "data", "")}}},
	{name: "02_format-bom", conns: []string{"\xEF\xBB\xBFdata:1\n\n\xEF\xBB\xBFdata:2\n\ndata:3\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "1", ""), ev("", "3", "")}}},
	{name: "03_format-bom-2", conns: []string{"\xEF\xBB\xBF\xEF\xBB\xBFdata:1\n\ndata:2\n\ndata:3\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "2", ""), ev("", "3", "")}}},
	{name: "04_format-comments", conns: []string{"data:1\r:\x00\n:\r\ndata:2\n:" + x2048 + "\rdata:3\n:data:fail\r:" + x2048 + "\ndata:4\n\n"},
		want: outcome{Events: []sse.Event{ev("", "1\n2\n3\n4", "")}, Comments: []string{"\x00", "", x2048, "data:fail", x2048}}},
	{name: "05_format-data-before-final-empty-line", conns: []string{
		"retry:1000\ndata:test1\n\nid:test\ndata:test2\n",
		"retry:1000\ndata:test1\n\nid:test\ndata:test2\n",
	}, want: outcome{
		Events: []sse.Event{evr("", "test1", "", time.Second), evr("", "test1", "", time.Second)},
		Retry:  time.Second, RetrySet: true,
	}},
	{name: "06_format-field-data", conns: []string{"data:\n\ndata\ndata\n\ndata:test\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "", ""), ev("", "\n", ""), ev("", "test", "")}}},
	{name: "07_format-field-event", conns: []string{"event:test\ndata:x\n\ndata:x\n\n\n"},
		want: outcome{Events: []sse.Event{ev("test", "x", ""), ev("", "x", "")}}},
	{name: "08_format-field-event-empty", conns: []string{"event: \ndata:data\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "data", "")}}},
	{name: "09_format-field-id", conns: []string{"id: \xE2\x80\xA6\nretry: 200\ndata: hello\n\n"},
		want: outcome{Events: []sse.Event{evr("", "hello", "…", 200*time.Millisecond)}, LastID: "…",
			Retry: 200 * time.Millisecond, RetrySet: true}},
	{name: "10_format-field-id-persists-across-reconnect", conns: []string{
		"id: \xE2\x80\xA6\nretry: 200\ndata: hello\n\n",
		"data: \xE2\x80\xA6\n\n",
	}, want: outcome{
		Events: []sse.Event{evr("", "hello", "…", 200*time.Millisecond), ev("", "…", "…")},
		LastID: "…", Retry: 200 * time.Millisecond, RetrySet: true,
	}},
	{name: "11_format-field-id-2", conns: []string{
		"id: \xE2\x80\xA6\nretry: 200\ndata: hello\n\n",
		"data: \xE2\x80\xA6\n\n",
		"data: \xE2\x80\xA6\n\n",
	}, want: outcome{
		Events: []sse.Event{evr("", "hello", "…", 200*time.Millisecond), ev("", "…", "…"), ev("", "…", "…")},
		LastID: "…", Retry: 200 * time.Millisecond, RetrySet: true,
	}},
	{name: "12_format-field-id-3-persists", conns: []string{"id: 1\ndata: 1\n\ndata: 2\n\nid: 2\ndata:3\n\ndata:4\n\n"},
		want: outcome{Events: []sse.Event{ev("", "1", "1"), ev("", "2", "1"), ev("", "3", "2"), ev("", "4", "2")}, LastID: "2"}},
	{name: "13_format-field-id-3-resets", conns: []string{"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n"},
		want: outcome{Events: []sse.Event{ev("", "1", "1"), ev("", "2", ""), ev("", "3", "")}}},
	{name: "14_format-field-id-3-resets-without-colon", conns: []string{"id: 1\ndata: 1\n\nid\ndata:2\n\ndata:3\n\n"},
		want: outcome{Events: []sse.Event{ev("", "1", "1"), ev("", "2", ""), ev("", "3", "")}}},
	idNullCase("15_format-field-id-null-00-00", "id: \x00\x00\n"),
	idNullCase("16_format-field-id-null-x-00", "id: x\x00\n"),
	idNullCase("17_format-field-id-null-00-x", "id: \x00x\n"),
	idNullCase("18_format-field-id-null-x-00-x", "id: x\x00x\n"),
	idNullCase("19_format-field-id-null-space-00", "id:  \x00\n"),
	{name: "20_format-field-parsing", conns: []string{"data:\x00\ndata:  2\rData:1\ndata\x00:2\ndata:1\r\x00data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n"},
		want: outcome{Events: []sse.Event{ev("", "\x00\n 2\n1\n3\n\n4", "")}}},
	{name: "21_format-field-retry", conns: []string{"retry:03000\ndata:x\n\n\n"},
		want: outcome{Events: []sse.Event{evr("", "x", "", 3*time.Second)}, Retry: 3 * time.Second, RetrySet: true}},
	{name: "22_format-field-retry-bogus", conns: []string{"retry:3000\nretry:1000x\ndata:x\n\n\n"},
		want: outcome{Events: []sse.Event{evr("", "x", "", 3*time.Second)}, Retry: 3 * time.Second, RetrySet: true}},
	{name: "23_format-field-retry-empty", conns: []string{"retry\ndata:test\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "test", "")}}},
	{name: "24_format-field-unknown", conns: []string{"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "test\n\ntest", "")}, Comments: []string{"thisisacommentyay"}}},
	{name: "25_format-leading-space", conns: []string{"data:\ttest\rdata: \ndata:test\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "\ttest\n\ntest", "")}}},
	{name: "26_format-newlines", conns: []string{"data:test\r\ndata\ndata:test\r\n\r\n"},
		want: outcome{Events: []sse.Event{ev("", "test\n\ntest", "")}}},
	{name: "27_format-null-character", conns: []string{"data:\x00\n\n\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "\x00", "")}}},
	{name: "28_format-utf-8", conns: []string{"data:ok\xE2\x80\xA6\n\n\n"},
		want: outcome{Events: []sse.Event{ev("", "ok…", "")}}},
	{name: "29_event-data", conns: []string{"data:msg\ndata: msg\n\n:\nfalsefield:msg\n\nfalsefield:msg\nData:data\n\ndata\n\ndata:end\n\n"},
		want: outcome{Events: []sse.Event{ev("", "msg\nmsg", ""), ev("", "", ""), ev("", "end", "")}, Comments: []string{""}}},

	{name: "42_spec-four-blocks", conns: []string{": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"},
		want: outcome{Events: []sse.Event{ev("", "first event", "1"), ev("", "second event", ""), ev("", " third event", "")},
			Comments: []string{"test stream"}}},
	{name: "43_spec-last-block-discarded", conns: []string{"data\n\ndata\ndata\n\ndata:"},
		want: outcome{Events: []sse.Event{ev("", "", ""), ev("", "\n", "")}}},
	{name: "44_spec-space-optional", conns: []string{"data:test\n\ndata: test\n\n"},
		want: outcome{Events: []sse.Event{ev("", "test", ""), ev("", "test", "")}}},
	{name: "45_spec-multiline", conns: []string{"data: YHOO\ndata: +2\ndata: 10\n\n"},
		want: outcome{Events: []sse.Event{ev("", "YHOO\n+2\n10", "")}}},
	{name: "46_crlf-where-cr-ends-a-chunk", chunks: []string{"data: Hello\r", "\ndata: World\r", "\n\r\ndata: OK\r", "\n", "\r", "\n"},
		want: outcome{Events: []sse.Event{ev("", "Hello\nWorld", ""), ev("", "OK", "")}}},
	{name: "47_bom-split-byte-by-byte", chunks: []string{"\xEF", "\xBB", "\xBF", "data: Hello\n\n"},
		want: outcome{Events: []sse.Event{ev("", "Hello", "")}}},
	{name: "48_bom-only-at-stream-start", chunks: []string{"data: First\n\n", "data: \xEF\xBB\xBFSecond\n\n"},
		want: outcome{Events: []sse.Event{ev("", "First", ""), ev("", "\uFEFFSecond", "")}}},
	{name: "49_only-first-bom-stripped", conns: []string{"\xEF\xBB\xBFdata: \xEF\xBB\xBFHello\n\n"},
		want: outcome{Events: []sse.Event{ev("", "\uFEFFHello", "")}}},
	{name: "50_id-with-null-ignored", conns: []string{"id: a\x00bc\ndata: Hello\n\n"},
		want: outcome{Events: []sse.Event{ev("", "Hello", "")}}},
	{name: "51_fields-with-extra-leading-space", conns: []string{"event:  greeting\ndata:  Hello\n\n"},
		want: outcome{Events: []sse.Event{ev(" greeting", " Hello", "")}}},
	{name: "52_fields-in-reverse-order", conns: []string{"data: Hello\nid: abc\nevent: greeting\n\n"},
		want: outcome{Events: []sse.Event{ev("greeting", "Hello", "abc")}, LastID: "abc"}},
	{name: "53_two-messages-spanning-3-chunks", chunks: []string{"data: test", "test\n\ndata:", "test\n\n"},
		want: outcome{Events: []sse.Event{ev("", "testtest", ""), ev("", "test", "")}}},
	linefeedCase("54_linefeeds-LF", "\n"),
	linefeedCase("54_linefeeds-CRLF", "\r\n"),
	linefeedCase("54_linefeeds-CR", "\r"),
}

// idNullCase builds cases 15 to 19: the id line is ignored, so no ID is
// dispatched or sent back, and the reconnection gets hello again.
func idNullCase(name, idLine string) corpusCase {
	body := idLine + "retry: 200\ndata: hello\n\n"
	hello := evr("", "hello", "", 200*time.Millisecond)
	return corpusCase{name: name, conns: []string{body, body}, want: outcome{
		Events: []sse.Event{hello, hello}, Retry: 200 * time.Millisecond, RetrySet: true,
	}}
}

// linefeedCase builds case 54 for one line terminator.
func linefeedCase(name, t string) corpusCase {
	body := "data: event 1" + t + t + t + t + "data: event 2" + t + t
	return corpusCase{name: name, conns: []string{body},
		want: outcome{Events: []sse.Event{ev("", "event 1", ""), ev("", "event 2", "")}}}
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	for _, tc := range corpus {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.chunks != nil {
				t.Run("case-chunks", func(t *testing.T) {
					checkOutcome(t, decodeConns(0, tc.chunks), tc.want)
				})
				tc.conns = []string{strings.Join(tc.chunks, "")}
			}
			for _, sp := range splits {
				t.Run(sp.name, func(t *testing.T) {
					var conns [][]string
					for _, body := range tc.conns {
						conns = append(conns, sp.split(body))
					}
					checkOutcome(t, decodeConns(0, conns...), tc.want)
				})
			}
		})
	}
}

func checkOutcome(t *testing.T, got, want outcome) {
	t.Helper()
	if !got.equal(want) {
		t.Errorf("got:\n%v\nwant:\n%v", got, want)
	}
}
