package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Mercure talks to a Mercure hub: it subscribes to topics and publishes
// updates, with a token. Its zero value is not usable: set URL.
type Mercure struct {
	// URL is the hub's, such as https://example.com/.well-known/mercure.
	URL string
	// Token, when not empty, is sent as Authorization: Bearer with each
	// request: a subscriber token to receive private updates, a publisher
	// token to publish.
	Token string
	// Client opens subscriptions and publishes. Nil means a zero Client.
	Client *Client
}

func (m *Mercure) client() *Client {
	if m.Client != nil {
		return m.Client
	}
	return &Client{}
}

func (m *Mercure) hubURL() (*url.URL, error) {
	u, err := url.Parse(m.URL)
	if err != nil {
		return nil, fmt.Errorf("client: hub URL %q: %w", m.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: hub URL %q: not an http:// or https:// URL", m.URL)
	}
	return u, nil
}

// Subscribe returns a stream of the updates whose topics match the topic
// selectors (exact topics, URI templates, or "*"). To resume after an
// event, set opts.LastEventID. A hub's refusal (a status other than 200,
// such as 401 for a bad token) ends the stream with a *HubError.
func (m *Mercure) Subscribe(ctx context.Context, topics []string, opts Options) (*Stream, error) {
	if len(topics) == 0 {
		return nil, errors.New("client: subscribe to no topic")
	}
	u, err := m.hubURL()
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for _, t := range topics {
		q.Add("topic", t)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if m.Token != "" {
		req.Header.Set("Authorization", "Bearer "+m.Token)
	}
	s := m.client().Connect(ctx, req, opts)
	s.refused = func(se *StatusError) error {
		return hubError(se.StatusCode, se.Status, []byte(se.Body))
	}
	return s, nil
}

// Update is what Publish sends.
type Update struct {
	Topics  []string      // at least one; the first is canonical
	Data    string        // the payload
	Private bool          // only for subscribers whose token allows one of the topics
	ID      string        // empty: the hub makes one up
	Type    string        // the SSE event type; empty: "message"
	Retry   time.Duration // when positive, the subscribers' reconnection delay
	End     bool          // herald's extension: end the topics' streams
}

// HubError is a hub's refusal of a request.
type HubError struct {
	StatusCode int
	Status     string
	// Code is herald's error code ("invalid_token", …), empty from a hub
	// that gives none.
	Code string
	// Message is what the hub said.
	Message string
}

func (e *HubError) Error() string {
	var b strings.Builder
	b.WriteString("client: the hub answered ")
	b.WriteString(e.Status)
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Publish sends an update to the hub and returns its event ID, once the
// hub has accepted it (herald answers once the event is on disk).
func (m *Mercure) Publish(ctx context.Context, up Update) (string, error) {
	if len(up.Topics) == 0 {
		return "", errors.New("client: publish to no topic")
	}
	u, err := m.hubURL()
	if err != nil {
		return "", err
	}
	form := url.Values{"topic": up.Topics, "data": {up.Data}}
	if up.Private {
		form.Set("private", "on")
	}
	if up.ID != "" {
		form.Set("id", up.ID)
	}
	if up.Type != "" {
		form.Set("type", up.Type)
	}
	if up.Retry > 0 {
		form.Set("retry", strconv.FormatInt(up.Retry.Milliseconds(), 10))
	}
	if up.End {
		form.Set("end", "on")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if m.Token != "" {
		req.Header.Set("Authorization", "Bearer "+m.Token)
	}
	resp, err := m.client().httpClient().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", hubError(resp.StatusCode, resp.Status, body)
	}
	return string(body), nil
}

// hubError reads a refusal: herald's JSON body, or the plain text other
// hubs answer with.
func hubError(code int, status string, body []byte) *HubError {
	e := &HubError{StatusCode: code, Status: status}
	var j struct{ Error, Message string }
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		e.Code, e.Message = j.Error, j.Message
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	return e
}
