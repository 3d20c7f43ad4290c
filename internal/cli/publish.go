package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/herald-sse/herald/client"
)

const publishSynopsis = `-topic topic [-topic topic]… [-data text | -data -] [flags]

Publishes an update to a Mercure hub and prints its event ID once the hub
has accepted it. The first topic is the update's canonical one. With
-data -, the data is read from the standard input.

Publishing takes a token that allows the topics: -token, or -key with the
hub's publisher key, or $HERALD_PUBLISHER_JWT_KEY, to sign one.

Flags:`

// publishTokenTTL bounds the tokens publish signs: they are used at once.
const publishTokenTTL = 5 * time.Minute

func runPublish(e *env, args []string) error {
	fs := newFlags(e, "publish", publishSynopsis)
	var hf hubFlags
	hf.register(fs, "the topics", publisherRole)
	var topics stringsFlag
	fs.Var(&topics, "topic", "a `topic` (an IRI) of the update; repeat for more")
	data := fs.String("data", "", "the update's `data`; - reads it from the standard input")
	private := fs.Bool("private", false, "deliver only to subscribers whose token allows one of the topics")
	id := fs.String("id", "", "the event `ID` (default: the hub makes one up)")
	typ := fs.String("type", "", "the SSE event `type` (default: message)")
	retry := fs.Duration("retry", 0, "the reconnection delay to set on subscribers (a `duration`)")
	end := fs.Bool("end", false, "end the topics' streams after this update (a herald extension)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (a `duration`)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	hf.defaults(e)
	if len(pos) > 0 {
		return usagef("unexpected arguments: %q (the data goes in -data)", pos)
	}
	if len(topics) == 0 {
		return usagef("no topic: pass -topic")
	}
	if *retry < 0 || *retry > 0 && *retry < time.Millisecond {
		return usagef("-retry %v: want a positive number of milliseconds", *retry)
	}
	u, err := hubURL(hf.hub)
	if err != nil {
		return err
	}
	if *data == "-" {
		if e.Stdin == nil {
			return errors.New("-data -: no standard input")
		}
		b, err := io.ReadAll(e.Stdin)
		if err != nil {
			return fmt.Errorf("read the standard input: %w", err)
		}
		*data = string(b)
	}
	tok, err := hf.authorization(e, publisherRole, grant{Publish: slices.Clone(topics)}, publishTokenTTL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, *timeout)
	defer cancel()
	m := &client.Mercure{URL: u.String(), Token: tok}
	evID, err := m.Publish(ctx, client.Update{
		Topics: topics, Data: *data, Private: *private, ID: *id, Type: *typ, Retry: *retry, End: *end,
	})
	var he *client.HubError
	switch {
	case errors.As(err, &he):
		return refusal("the update", he, publisherRole)
	case err != nil && e.ctx.Err() != nil:
		return e.ctx.Err()
	case err != nil:
		return reachError(u.Redacted(), err, true)
	}
	_, err = fmt.Fprintln(e.stdout, evID)
	return err
}

// parseInterspersed parses args into fs, flags and positional arguments in
// any order (the flag package stops at the first positional one), and
// returns the positional ones. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil // the flag package stopped at "--"
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
