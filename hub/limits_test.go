package hub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
)

// refusal is a refused request's answer.
type refusal struct {
	status  int
	code    string
	message string
	header  http.Header
}

// refused sends req and returns the hub's refusal, failing the test if the
// hub accepts it or answers without the JSON body of errors.
func refused(t *testing.T, req *http.Request) refusal {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode < 400 {
		t.Fatalf("status %d, body not an error (%v)", resp.StatusCode, err)
	}
	return refusal{resp.StatusCode, body.Error, body.Message, resp.Header}
}

// subscribeRequest is a subscription's GET with the query and headers.
func (th *testHub) subscribeRequest(t *testing.T, query string, header http.Header) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, th.url+"?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	return req
}

// check fails the test unless r is the refusal wanted, its message naming
// the setting.
func (r refusal) check(t *testing.T, status int, code, setting string) {
	t.Helper()
	if r.status != status || r.code != code || !strings.Contains(r.message, setting) {
		t.Fatalf("got %d %s %q, want %d %s naming %s", r.status, r.code, r.message, status, code, setting)
	}
}

// selectorsQuery returns a subscription's query with n selectors made by
// format from 0 to n-1.
func selectorsQuery(format string, n int) string {
	v := url.Values{}
	for i := range n {
		v.Add("topic", fmt.Sprintf(format, i))
	}
	return v.Encode()
}

// A subscription holds at most MaxSelectors selectors, 256 by default.
func TestMaxSelectors(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	th.subscribe(t, selectorsQuery("/s/%d", hub.DefaultMaxSelectors), nil).close()
	r := refused(t, th.subscribeRequest(t, selectorsQuery("/s/%d", hub.DefaultMaxSelectors+1), nil))
	r.check(t, http.StatusBadRequest, "too_many_selectors", "max-selectors")
	if !strings.Contains(r.message, "256") {
		t.Errorf("the message %q does not say the limit", r.message)
	}
	// An update still takes MaxTopics topics.
	form := url.Values{"data": {"x"}}
	for i := range hub.DefaultMaxSelectors + 1 {
		form.Add("topic", fmt.Sprintf("/s/%d", i))
	}
	if status, body := th.post(t, form, publisherToken(t)); status != http.StatusOK {
		t.Fatalf("an update with %d topics: %d %s", hub.DefaultMaxSelectors+1, status, body)
	}
}

// A token with a claim of more than MaxClaimSelectors selectors is
// refused, by each hub according to its own bound, even when hubs share
// the key that remembers verified tokens.
func TestMaxClaimSelectors(t *testing.T) {
	t.Parallel()
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	strict := newTestHub(t, hub.Config{PublisherKey: key, SubscriberKey: key, Anonymous: true, MaxClaimSelectors: 3})
	lax := newTestHub(t, hub.Config{PublisherKey: key, SubscriberKey: key, Anonymous: true})
	four := []string{"/a", "/b", "/c", "/d"}
	sub := bearer(token(t, nil, four, time.Time{}))
	pub := token(t, four, nil, time.Time{})

	lax.subscribe(t, q("topic", "/a"), sub).close()
	refused(t, strict.subscribeRequest(t, q("topic", "/a"), sub)).check(t, http.StatusUnauthorized, "invalid_token", "max-claim-selectors")
	strict.subscribe(t, q("topic", "/a"), bearer(token(t, nil, four[:3], time.Time{}))).close()

	form := url.Values{"topic": {"/a"}, "data": {"x"}}
	if status, body := lax.post(t, form, pub); status != http.StatusOK {
		t.Fatalf("publish to the lax hub: %d %s", status, body)
	}
	req, err := http.NewRequest(http.MethodPost, strict.url, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+pub)
	refused(t, req).check(t, http.StatusUnauthorized, "invalid_token", "max-claim-selectors")
	plain := []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", hub.Path, pub, len(form.Encode()), form.Encode()))
	var out []byte
	if hub.AnswerPlain(strict.Hub, plain, &out) {
		t.Fatalf("Serve answered a publication with a token past the bound: %q", out)
	}
}

// The distinct templates that subscribers hold together are bounded by
// MaxTemplates: a subscription that would add more is refused with 503 and
// Retry-After; one whose templates are held already is accepted; room
// comes back as subscribers leave, and is not kept by a HEAD request.
func TestMaxTemplates(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{MaxTemplates: 3})
	ab := th.subscribe(t, q("topic", "/t/{a}", "topic", "/t/{b}", "topic", "/plain"), nil)
	refuse := func(query string) {
		t.Helper()
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req := th.subscribeRequest(t, query, nil)
			req.Method = method
			if method == http.MethodHead {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("HEAD %s: status %d, want 503", query, resp.StatusCode)
				}
				continue
			}
			r := refused(t, req)
			r.check(t, http.StatusServiceUnavailable, "too_many_templates", "max-templates")
			if r.header.Get("Retry-After") != "10" {
				t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
			}
		}
	}
	refuse(q("topic", "/t/{c}", "topic", "/t/{d}"))
	head := th.subscribeRequest(t, q("topic", "/t/{c}"), nil)
	head.Method = http.MethodHead
	if status, _ := do(t, head); status != http.StatusOK {
		t.Fatalf("HEAD: status %d", status)
	}
	ac := th.subscribe(t, q("topic", "/t/{a}", "topic", "/t/{c}", "topic", "/t/{c}"), nil) // the third
	th.subscribe(t, q("topic", "/t/{a}", "topic", "/t/{b}", "topic", "/other"), nil)       // held already
	refuse(q("topic", "/t/{e}"))
	if n := hub.HeldTemplates(th.Hub); n != 3 {
		t.Fatalf("%d templates held, want 3", n)
	}
	ab.close()
	ac.close()
	// The hub notices the closes by itself, without a write.
	waitFor(t, "the subscribers to leave", func() bool { return hub.Subscribers(th.Hub) == 1 })
	if n := hub.HeldTemplates(th.Hub); n != 2 {
		t.Fatalf("%d templates held once /t/{c}'s subscriber left, want 2", n)
	}
	e := th.subscribe(t, q("topic", "/t/{e}"), nil)
	th.publish(t, "/t/e", "room")
	e.expect(t, "room")
}

// A flood of templates: 20 anonymous subscriptions of 1,000 distinct
// templates each. With the default bounds each is refused, naming the
// bound; with bounds raised to accept them, an unrelated subscriber still
// gets its events, and a publication evaluates only the templates whose
// literal prefix fits its topic.
func TestTemplateFlood(t *testing.T) {
	t.Parallel()
	const conns, each = 20, 1000
	flood := func(c int) string { return selectorsQuery(fmt.Sprintf("/flood/%d/%%d/{x}", c), each) }

	th := newTestHub(t, hub.Config{})
	for c := range conns {
		refused(t, th.subscribeRequest(t, flood(c), nil)).check(t, http.StatusBadRequest, "too_many_selectors", "max-selectors")
	}

	th = newTestHub(t, hub.Config{MaxSelectors: each, MaxTemplates: conns*each + 1})
	floods := make([]*stream, conns)
	for c := range floods {
		floods[c] = th.subscribe(t, flood(c), nil)
	}
	news := th.subscribe(t, q("topic", "/news/{id}"), nil)
	before := hub.TemplatesEvaluated(th.Hub)
	th.publish(t, "/flood/3/7/x", "flood")
	const events = 30
	for i := range events {
		th.publish(t, fmt.Sprintf("/news/%d", i), fmt.Sprint(i))
	}
	for i := range events {
		news.expect(t, fmt.Sprint(i))
	}
	floods[3].expect(t, "flood")
	// One template fits each topic: /flood/3/7/{x}, then /news/{id}.
	if n := hub.TemplatesEvaluated(th.Hub) - before; n != events+1 {
		t.Fatalf("%d publications evaluated %d templates, want one each", events+1, n)
	}
}
