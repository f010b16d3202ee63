package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RangeOptions selects the messages Range yields. The zero value selects
// every message of the stream, from its first archived one to the last one
// JetStream holds when Range begins.
type RangeOptions struct {
	// StartSeq is the first sequence (0: the first). Set StartSeq or
	// StartTime, not both.
	StartSeq uint64
	// StartTime starts at the first message stored at or after it.
	StartTime time.Time
	// EndSeq is the last sequence, inclusive (0: no bound but the stream's
	// last message when Range begins).
	EndSeq uint64
	// EndTime ends at the last message stored at or before it (zero: no
	// bound).
	EndTime time.Time
	// Subject keeps the messages on matching subjects (NATS wildcards;
	// empty: all).
	Subject string
}

// Limits of Range's batches: the payload and header bytes nts sends in one
// msg.range batch, and the bytes and messages of one JetStream fetch.
const (
	rangeBatchBytes = 8 << 20
	rangeFetchMax   = 256
	// consumerInactive is the inactive threshold of Range's consumer: the
	// server deletes it when a loop body keeps Range waiting that long, and
	// Range creates another where it was.
	consumerInactive = 5 * time.Minute
)

// Range iterates over messages of stream in sequence order, old ones from
// nts and the ones JetStream holds from JetStream, with no gap and no
// duplicate where they meet. It yields each message once with a nil error,
// or a nil message and the error that ended the range.
//
// Range reads JetStream's first sequence when it begins: messages before it
// come from nts (in batches of a few MiB), the rest from an ephemeral
// consumer of JetStream. JetStream may drop more messages (limits, purges)
// while Range reads; when what JetStream delivers skips sequences below its
// new first sequence, Range reads them from nts. Other sequences JetStream
// skips are gone from the stream (deleted) and are not yielded, even if nts
// archived them before they were deleted (GetMsg returns those).
//
// Archived messages stored before the stream JetStream holds was created
// are of an earlier stream of that name and are not yielded (a mirror or a
// stream with sources stores messages with their origin's time: for those
// the archive is taken as it is).
//
// Without EndSeq or EndTime the range ends at the stream's last message
// when Range began. When JetStream no longer has the stream, Range yields
// what nts archived of it. Messages, headers and payloads belong to the
// caller. A loop body that breaks stops Range, which then deletes its
// consumer.
func (c *Client) Range(ctx context.Context, stream string, opts RangeOptions) iter.Seq2[*jetstream.RawStreamMsg, error] {
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		r := &ranger{c: c, stream: stream, o: opts, yield: yield}
		err := r.run(ctx)
		if err != nil && !errors.Is(err, errStopped) && !errors.Is(err, errEnded) {
			yield(nil, err)
		}
	}
}

// errStopped and errEnded end a range without an error: the loop body
// broke, or a message past the end was seen.
var (
	errStopped = errors.New("range stopped")
	errEnded   = errors.New("range ended")
)

// ranger is the state of one Range.
type ranger struct {
	c       *Client
	stream  string
	o       RangeOptions
	yield   func(*jetstream.RawStreamMsg, error) bool
	next    uint64 // the lowest sequence neither yielded nor passed
	end     uint64 // the last sequence to yield
	yielded bool
	created time.Time // see createdBefore (zero: the stream is gone)
}

// rangeRequest is the body of msg.range.
type rangeRequest struct {
	StartSeq  uint64     `json:"start_seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	EndSeq    uint64     `json:"end_seq,omitempty"`
	EndTime   *time.Time `json:"end_time,omitempty"`
	Subject   string     `json:"subject,omitempty"`
	MaxBytes  int64      `json:"max_bytes,omitempty"`
}

func (r *ranger) check() error {
	if err := r.c.checkStream(r.stream); err != nil {
		return err
	}
	o := r.o
	switch {
	case o.StartSeq != 0 && !o.StartTime.IsZero():
		return fmt.Errorf("%w: range: set StartSeq or StartTime, not both", ErrInvalidArgument)
	case o.EndSeq != 0 && o.EndSeq < o.StartSeq:
		return fmt.Errorf("%w: range: EndSeq %d is before StartSeq %d", ErrInvalidArgument, o.EndSeq, o.StartSeq)
	case !o.EndTime.IsZero() && o.EndTime.Before(o.StartTime):
		return fmt.Errorf("%w: range: EndTime is before StartTime", ErrInvalidArgument)
	case o.Subject != "" && !validFilter(o.Subject):
		return fmt.Errorf("%w: range: subject filter %q", ErrInvalidArgument, o.Subject)
	}
	return nil
}

func (r *ranger) run(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
	}
	r.next, r.end = max(1, r.o.StartSeq), uint64(math.MaxUint64)
	if r.o.EndSeq != 0 {
		r.end = r.o.EndSeq
	}
	s, err := r.c.js.Stream(ctx, r.stream)
	gone := errors.Is(err, jetstream.ErrStreamNotFound)
	if err != nil && !gone {
		return err
	}
	seam := uint64(math.MaxUint64)
	if !gone {
		info := s.CachedInfo()
		r.end = min(r.end, info.State.LastSeq)
		seam = max(info.State.FirstSeq, 1)
		r.created = createdBefore(info)
	}
	if r.next < seam && r.next <= r.end {
		to := min(r.end, seam-1)
		err := r.archive(ctx, r.next, to, !r.o.StartTime.IsZero(), r.emitArchived)
		switch {
		case isNotFound(err) && !gone: // nothing archived
		case isNotFound(err):
			return notFound(err, jetstream.ErrStreamNotFound)
		case err != nil:
			return err
		}
		if gone {
			return nil
		}
		r.next = max(r.next, to+1)
	}
	if gone {
		return nil
	}
	return r.jetstream(ctx, s)
}

// emit yields m unless it is before r.next (yielded or passed already) or
// the start time, and returns errEnded when m is past the end, errStopped
// when the loop body broke.
func (r *ranger) emit(m *jetstream.RawStreamMsg) error {
	if m.Sequence < r.next {
		return nil
	}
	if m.Sequence > r.end || (!r.o.EndTime.IsZero() && m.Time.After(r.o.EndTime)) {
		return errEnded
	}
	r.next = m.Sequence + 1
	if m.Time.Before(r.o.StartTime) {
		return nil
	}
	r.yielded = true
	if !r.yield(m, nil) {
		return errStopped
	}
	return nil
}

// emitArchived emits m, read from nts, unless it is older than the stream
// JetStream holds: it is then of an earlier stream of that name, which nts
// archives under the plain name, and the current stream has no such message.
func (r *ranger) emitArchived(m *jetstream.RawStreamMsg) error {
	if m.Time.Before(r.created) {
		return nil
	}
	return r.emit(m)
}

// archive reads sequences from..to of the stream from nts, a batch at a
// time, and passes each message to emit. The first batch starts at the
// start time instead of from when byTime is set.
func (r *ranger) archive(ctx context.Context, from, to uint64, byTime bool, emit func(*jetstream.RawStreamMsg) error) error {
	b, err := r.c.newBatches()
	if err != nil {
		return err
	}
	defer b.close()
	subject := RangeSubject(r.c.prefix, r.stream)
	for {
		req := rangeRequest{StartSeq: from, Subject: r.o.Subject, MaxBytes: rangeBatchBytes}
		if to != math.MaxUint64 {
			req.EndSeq = to
		}
		if byTime {
			req.StartSeq, req.StartTime = 0, &r.o.StartTime
			byTime = false
		}
		if !r.o.EndTime.IsZero() {
			req.EndTime = &r.o.EndTime
		}
		if err := b.send(subject, req); err != nil {
			return err
		}
		last, pending, err := r.batch(ctx, b, subject, emit)
		if err != nil {
			return err
		}
		if pending == 0 || last >= to {
			return nil
		}
		if last < from {
			return fmt.Errorf("%w: %s: batch from %d ends at %d with %d pending", ErrInvalidReply, subject, from, last, pending)
		}
		from = last + 1
	}
}

// batch reads one msg.range batch, passing its messages to emit, and
// returns its end-of-batch headers.
func (r *ranger) batch(ctx context.Context, b *batches, subject string, emit func(*jetstream.RawStreamMsg) error) (last, pending uint64, err error) {
	var prev uint64
	for {
		m, err := b.next(ctx)
		if err != nil {
			return 0, 0, err
		}
		if IsEndOfBatch(m) {
			last, err1 := strconv.ParseUint(m.Header.Get(HeaderLastSeq), 10, 64)
			pending, err2 := strconv.ParseUint(m.Header.Get(HeaderNumPending), 10, 64)
			if err1 != nil || err2 != nil || last < prev {
				return 0, 0, fmt.Errorf("%w: %s: end of batch %s %q, %s %q after seq %d", ErrInvalidReply, subject,
					HeaderLastSeq, m.Header.Get(HeaderLastSeq), HeaderNumPending, m.Header.Get(HeaderNumPending), prev)
			}
			return last, pending, nil
		}
		msg, err := parseMsg(subject, m)
		if err != nil {
			return 0, 0, err
		}
		if msg.Sequence <= prev {
			return 0, 0, fmt.Errorf("%w: %s: seq %d after %d", ErrInvalidReply, subject, msg.Sequence, prev)
		}
		prev = msg.Sequence
		if err := emit(msg); err != nil {
			return 0, 0, err
		}
	}
}
