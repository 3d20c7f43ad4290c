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
