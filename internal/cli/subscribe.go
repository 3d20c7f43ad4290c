package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/sse"
)

const subscribeSynopsis = `[URL] [-topic selector]… [flags]

Prints the events of a stream as they arrive, and reconnects when the
connection drops, resuming with Last-Event-ID, until interrupted (Ctrl-C)
or until the server ends the stream.

With -topic, subscribes to a Mercure hub (URL, else -hub): the selectors
are exact topics, URI templates, or *. Without, URL is any event stream,
a hub's subscription URL with its topic parameters for instance.

Private updates take a token that allows them: -token, or -key with the
hub's subscriber key, or $HERALD_SUBSCRIBER_JWT_KEY
($HERALD_PUBLISHER_JWT_KEY when not set), to sign one.

Events go to the standard output, one block each: the time received, the
type and the ID, then the data, indented; with -json, one JSON object per
line. Connections and drops are reported on the standard error.

Flags:`

func runSubscribe(e *env, args []string) error {
	fs := newFlags(e, "subscribe", subscribeSynopsis)
	var hf hubFlags
	hf.register(fs, "the topics", subscriberRole)
	var topics, headers stringsFlag
	fs.Var(&topics, "topic", "a topic `selector` to subscribe to; repeat for more")
	lastID := fs.String("last-event-id", "", "resume after this event `ID`")
	asJSON := fs.Bool("json", false, "print events as JSON lines: {\"id\", \"type\", \"data\"}")
	count := fs.Int("count", 0, "exit after this `number` of events; 0 for no limit")
	reconnect := fs.Bool("reconnect", true, "reconnect when the connection drops; false exits with an error")
	readTimeout := fs.Duration("read-timeout", 0, "treat a connection silent for this long as dropped (a `duration`); a hub sends a heartbeat every 40 s by default")
	comments := fs.Bool("comments", false, "print comments (heartbeats) too")
	quiet := fs.Bool("quiet", false, "do not report connections and drops")
	fs.Var(&headers, "header", "an HTTP `header` to send, as \"Name: value\"; repeat for more")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	hf.defaults(e)
	if len(pos) > 1 {
		return usagef("one URL at most, got %q", pos)
	}
	if *count < 0 {
		return usagef("-count %d: negative", *count)
	}
	target, err := subscribeURL(hf.hub, pos, topics)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodGet, target.String(), nil)
	if err != nil {
		return usagef("%v", err)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return usagef("-header %q: want \"Name: value\"", h)
		}
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	selectors := target.Query()["topic"]
	if len(selectors) == 0 {
		selectors = []string{"*"}
	}
	// A token signed here lives as long as the subscription: the hub
	// would end it at the token's expiry.
	tok, err := hf.authorization(e, subscriberRole, grant{Subscribe: selectors}, 0)
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}

	shown := displayURL(target)
	out := bufio.NewWriter(e.stdout)
	p := &printer{w: out, json: *asJSON}
	status := func(format string, args ...any) {
		if !*quiet {
			fmt.Fprintf(e.stderr, "herald subscribe: "+format+"\n", args...)
		}
	}
	c := &client.Client{ReadTimeout: *readTimeout}
	var s *client.Stream
	opts := client.Options{
		LastEventID: *lastID,
		OnConnect: func(*http.Response) {
			if id := s.LastEventID(); id != "" {
				status("connected to %s, resuming after %s", shown, id)
			} else {
				status("connected to %s", shown)
			}
		},
	}
	if *comments {
		opts.OnComment = func(text string) { p.comment(text) }
	}
	s = c.Connect(e.ctx, req, opts)
	defer s.Close()

	var n int
	hinted := false // a failure to connect was explained once
	for {
		ev, err := s.Next()
		var drop *client.DropError
		var he *client.HubError
		var se *client.StatusError
		switch {
		case err == nil:
			p.event(ev)
			n++
			if *count > 0 && n >= *count {
				return out.Flush()
			}
			// Flush when nothing more is waiting would need a peek at the
			// stream; an event per write keeps the output live.
			if err := out.Flush(); err != nil {
				return err
			}
			continue
		case errors.As(err, &drop):
			// The request failed (*url.Error), or the stream broke off.
			cause := fmt.Errorf("connection lost: %w", drop.Err)
			var ue *url.Error
			if errors.As(drop.Err, &ue) {
				cause = reachError(shown, drop.Err, !hinted)
				hinted = true
			}
			if !*reconnect {
				return cause
			}
			status("%v; reconnecting in %v", lowerFirst(cause), drop.Delay.Round(100*time.Millisecond))
			continue
		}
		if ferr := out.Flush(); ferr != nil {
			return ferr
		}
		switch {
		case errors.Is(err, context.Canceled) && e.ctx.Err() != nil:
			return nil // interrupted: a normal end
		case errors.Is(err, client.ErrNoContent):
			status("the server ended the stream (204 No Content)")
			return nil
		case errors.As(err, &he):
			return refusal("the subscription", he, subscriberRole)
		case errors.As(err, &se) && se.StatusCode >= 300 && se.StatusCode < 400:
			return fmt.Errorf("the server answered %s without a usable Location", se.Status)
		case errors.As(err, &se):
			// herald's JSON errors, or another server's text.
			he := &client.HubError{StatusCode: se.StatusCode, Status: se.Status, Message: se.Body}
			var body struct{ Error, Message string }
			if json.Unmarshal([]byte(se.Body), &body) == nil && body.Error != "" {
				he.Code, he.Message = body.Error, body.Message
			}
			return refusal("the subscription", he, subscriberRole)
		}
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "client: "))
	}
}

// subscribeURL is the URL to connect to: the positional one or -hub, with
// the -topic selectors added to its query.
func subscribeURL(hubFlag string, pos []string, topics []string) (*url.URL, error) {
	raw := hubFlag
	if len(pos) == 1 {
		raw = pos[0]
	} else if len(topics) == 0 {
		return nil, usagef("nothing to subscribe to: pass -topic, or the URL of an event stream")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("%q is not an http:// or https:// URL", raw)
	}
	q := u.Query()
	for _, t := range topics {
		q.Add("topic", t)
	}
	if len(q["topic"]) > 0 && (u.Path == "" || u.Path == "/") {
		if u, err = hubURL(u.String()); err != nil {
			return nil, err
		}
	}
	if len(topics) > 0 {
		u.RawQuery = q.Encode()
	}
	return u, nil
}

// displayURL is u for a person to read: without a password, and with
// its query unescaped (topics are URIs).
func displayURL(u *url.URL) string {
	v := *u
	q := v.RawQuery
	v.RawQuery = ""
	s := v.Redacted()
	if q != "" {
		if uq, err := url.QueryUnescape(q); err == nil {
			q = uq
		}
		s += "?" + q
	}
	return s
}

func lowerFirst(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// printer writes events in the human form or as JSON lines.
type printer struct {
	w    *bufio.Writer
	json bool
	enc  *json.Encoder
}

type jsonEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data string `json:"data"`
}

type jsonComment struct {
	Comment string `json:"comment"`
}

func (p *printer) encoder() *json.Encoder {
	if p.enc == nil {
		p.enc = json.NewEncoder(p.w)
		p.enc.SetEscapeHTML(false)
	}
	return p.enc
}

func (p *printer) event(ev sse.Event) {
	typ := cmpOr(ev.Type, "message")
	if p.json {
		_ = p.encoder().Encode(jsonEvent{ID: ev.ID, Type: typ, Data: ev.Data})
		return
	}
	fmt.Fprintf(p.w, "%s %s", time.Now().Format("15:04:05.000"), typ)
	if ev.ID != "" {
		fmt.Fprintf(p.w, " id=%s", ev.ID)
	}
	p.w.WriteByte('\n')
	if ev.Data == "" {
		return
	}
	for line := range strings.Lines(ev.Data) {
		p.w.WriteString("  ")
		p.w.WriteString(strings.TrimSuffix(line, "\n"))
		p.w.WriteByte('\n')
	}
	if strings.HasSuffix(ev.Data, "\n") {
		p.w.WriteString("  \n")
	}
}

func (p *printer) comment(text string) {
	if p.json {
		_ = p.encoder().Encode(jsonComment{Comment: text})
	} else {
		fmt.Fprintf(p.w, "%s :%s\n", time.Now().Format("15:04:05.000"), text)
	}
	_ = p.w.Flush()
}
