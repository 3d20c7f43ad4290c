package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/redis/go-redis/v9"
)

// run is the store's one reader: it follows the stream from the entry
// after last (a Redis position of the current epoch) and feeds the window,
// until ctx ends. It is the only caller of the window's Advance but for
// adopt, which it excludes by holding s.mu.
func (s *Store) run(ctx context.Context, last uint64) {
	defer close(s.done)
	s.mu.Lock()
	epoch := s.epoch
	s.mu.Unlock()
	backoff := 10 * time.Millisecond
	down := false // logged as lost, not yet as reached again
	for ctx.Err() == nil {
		s.mu.Lock()
		if s.epoch != epoch {
			epoch, last = s.epoch, 0 // adopted by an append: read the new epoch from its start
		}
		s.mu.Unlock()
		msgs, now, first, err := s.poll(ctx, last)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			err = s.failed(ctx, "following the stream", err)
			if !down {
				s.logger.Warn("redisstore: the reader lost Redis; it reconnects", "error", err)
				down = true
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		s.worked()
		if down {
			s.logger.Info("redisstore: the reader reached Redis again", "where", s.where)
			down = false
		}
		backoff = 10 * time.Millisecond
		if now != epoch {
			if now == "" {
				if now, err = s.renew(ctx); err != nil {
					continue // the next poll fails the same way, and backs off
				}
			}
			s.adopt(now)
			continue
		}
		last, err = s.feed(epoch, last, msgs, first)
		if err != nil {
			s.logger.Error("redisstore: the stream holds an entry herald cannot read; it is skipped", "error", err)
		}
		if len(msgs) == 0 && s.cfg.MaxAge > 0 {
			s.trim(ctx, epoch)
		}
	}
}

// trim drops the events past their age while no one appends, which
// appends otherwise do: it runs the append script with no events. Its
// failures are left to the next poll to notice.
func (s *Store) trim(ctx context.Context, epoch string) {
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	_ = appendScript.Run(cctx, s.rdb, s.keys.list(), epoch, s.cfg.Size, s.cfg.MaxAge.Microseconds(), trimBudget).Err()
}

// poll reads the entries after last, waiting up to readBlock for some, and
// the epoch around them: the entries are those of the epoch returned only
// if it was the same before and after the XREAD (then no loss came
// between). first is the first position retained, read after the entries.
func (s *Store) poll(ctx context.Context, last uint64) (msgs []redis.XMessage, epoch string, first uint64, err error) {
	var before, after, firstCmd *redis.StringCmd
	var read *redis.XStreamSliceCmd
	// One pipeline on the reader's own connection: Redis runs the GETs
	// after the XREAD returns.
	_, err = s.reader.Pipelined(ctx, func(p redis.Pipeliner) error {
		before = p.Get(ctx, s.keys.epoch)
		read = p.XRead(ctx, &redis.XReadArgs{
			Streams: []string{s.keys.log, fmt.Sprintf("%d-%d", last, uint64(math.MaxUint64))},
			Count:   readCount,
			Block:   readBlock,
		})
		after = p.Get(ctx, s.keys.epoch)
		firstCmd = p.Get(ctx, s.keys.first)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", 0, err
	}
	if before.Val() != after.Val() {
		return nil, after.Val(), 0, nil
	}
	if streams := read.Val(); len(streams) == 1 {
		msgs = streams[0].Messages
	}
	first, _ = firstCmd.Uint64()
	return msgs, after.Val(), max(first, 1), nil
}

// feed hands msgs, entries of epoch in order after the position last, to
// the window, with the first retained position first, and returns the
// position of the last entry read. With no entries it moves first alone.
// Entries this store appended are handed as the events Append prepared,
// not decoded again. An entry that does not decode is skipped (a gap that
// the hub reports), not retried forever.
func (s *Store) feed(epoch string, last uint64, msgs []redis.XMessage, first uint64) (_ uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != epoch {
		return 0, nil // adopted meanwhile: the next round starts over
	}
	evs := make([]*hub.Event, 0, len(msgs))
	for _, m := range msgs {
		pos, perr := entryPos(m.ID)
		if perr != nil {
			// Not herald's (someone else wrote to the stream): read past
			// it, not again and again.
			err = errors.Join(err, perr)
			if ms, _, ok := strings.Cut(m.ID, "-"); ok {
				if p, perr := strconv.ParseUint(ms, 10, 64); perr == nil {
					last = max(last, p)
				}
			}
			continue
		}
		last = pos
		local := pos + s.offset
		if ev, ok := s.pending[local]; ok {
			delete(s.pending, local)
			evs = append(evs, ev)
			continue
		}
		ev, derr := decode(m, s.offset)
		if derr != nil {
			err = errors.Join(err, derr)
			continue
		}
		evs = append(evs, ev)
	}
	next := last + 1 + s.offset
	// The events must follow on one another; one that did not decode
	// leaves a gap, and the window takes the ones after it alone.
	for i := len(evs) - 1; i > 0; i-- {
		if evs[i-1].Pos+1 != evs[i].Pos {
			evs = evs[i:]
			break
		}
	}
	if len(evs) > 0 && evs[len(evs)-1].Pos != next-1 {
		evs = nil
	}
	s.w.Advance(min(first+s.offset, next), next, evs...)
	if len(s.pending) > 0 {
		for p := range s.pending {
			if p < next {
				delete(s.pending, p) // trimmed before this reader saw it
			}
		}
	}
	return last, err
}
