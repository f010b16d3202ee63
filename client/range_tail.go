package client

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// jetstream reads the range from r.next on from JetStream through an
// ephemeral consumer, a fetch at a time. A fetch whose sequences skip some
// (or that ends before the range does) is checked against the stream's
// first sequence, read after the fetch completed: skipped sequences below
// it were dropped by JetStream, maybe before the consumer reached them, and
// are read from nts and merged in order.
func (r *ranger) jetstream(ctx context.Context, s jetstream.Stream) error {
	if r.next > r.end {
		return nil
	}
	cons, err := r.consumer(ctx, s)
	if err != nil {
		return err
	}
	defer func() { deleteConsumer(ctx, s, cons) }()
	// A server may limit how many messages one pull request asks for (its
	// jetstream limits' max_request_batch, which the consumer inherits),
	// refusing a fetch of more.
	fetchMax := rangeFetchMax
	if lim := cons.CachedInfo().Config.MaxRequestBatch; lim > 0 {
		fetchMax = min(fetchMax, lim)
	}
	n := clamp(rangeBatchBytes/max(int(r.c.nc.MaxPayload()), 1), 1, fetchMax)
	recreated := false
	for r.next <= r.end {
		msgs, size, err := fetch(ctx, cons, n)
		if err != nil {
			if recreated || ctx.Err() != nil {
				return err
			}
			// The consumer may be gone (inactive too long, the server
			// restarted): go on with another one from r.next.
			deleteConsumer(ctx, s, cons)
			if cons, err = r.consumer(ctx, s); err != nil {
				return err
			}
			recreated = true
			continue
		}
		recreated = false
		asked := n
		if len(msgs) > 0 {
			n = clamp(rangeBatchBytes/max(size/len(msgs), 1), 1, fetchMax)
		}
		before := r.next
		if r.skips(msgs, asked) {
			if err := r.fill(ctx, s, msgs); err != nil {
				return err
			}
		} else {
			for _, m := range msgs {
				if err := r.emit(m); err != nil {
					return err
				}
			}
		}
		if len(msgs) == 0 && r.next == before {
			return nil // JetStream has nothing more, nor nts before it
		}
	}
	return nil
}

// skips reports whether msgs, the result of a fetch of up to n messages,
// skip sequences from r.next on, or end before the range does.
func (r *ranger) skips(msgs []*jetstream.RawStreamMsg, n int) bool {
	next := r.next
	for _, m := range msgs {
		if m.Sequence > next {
			return true
		}
		next = max(next, m.Sequence+1)
	}
	return len(msgs) < n && next <= r.end
}

// fill emits msgs merged with what nts has of the sequences JetStream
// dropped from r.next on.
func (r *ranger) fill(ctx context.Context, s jetstream.Stream, msgs []*jetstream.RawStreamMsg) error {
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info of %s: %w", r.stream, err)
	}
	if first := info.State.FirstSeq; first > r.next {
		to := min(first-1, r.end)
		err := r.archive(ctx, r.next, to, false, func(m *jetstream.RawStreamMsg) error {
			for len(msgs) > 0 && msgs[0].Sequence <= m.Sequence {
				if err := r.emit(msgs[0]); err != nil {
					return err
				}
				msgs = msgs[1:]
			}
			return r.emitArchived(m)
		})
		if err != nil && !isNotFound(err) {
			return err
		}
		for len(msgs) > 0 && msgs[0].Sequence <= to {
			if err := r.emit(msgs[0]); err != nil {
				return err
			}
			msgs = msgs[1:]
		}
		r.next = max(r.next, to+1) // nts has nothing more of what JetStream dropped
	}
	for _, m := range msgs {
		if err := r.emit(m); err != nil {
			return err
		}
	}
	return nil
}

// consumer creates the range's ephemeral consumer, starting at r.next (at
// the start time when nothing was yielded yet).
func (r *ranger) consumer(ctx context.Context, s jetstream.Stream) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       r.next,
		FilterSubject:     r.o.Subject,
		InactiveThreshold: consumerInactive,
		MemoryStorage:     true,
	}
	if !r.o.StartTime.IsZero() && !r.yielded {
		t := r.o.StartTime
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &t
	}
	cons, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer of %s: %w", r.stream, err)
	}
	return cons, nil
}

// deleteConsumer deletes a consumer of Range, even when ctx is done; should
// that fail, its inactive threshold removes it.
func deleteConsumer(ctx context.Context, s jetstream.Stream, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = s.DeleteConsumer(ctx, cons.CachedInfo().Name) // best effort, see above
}

// fetch fetches up to n messages available now, and returns them with
// their total size.
func fetch(ctx context.Context, cons jetstream.Consumer, n int) ([]*jetstream.RawStreamMsg, int, error) {
	batch, err := cons.FetchNoWait(n)
	if err != nil {
		return nil, 0, err
	}
	var (
		out  []*jetstream.RawStreamMsg
		size int
	)
	for {
		select {
		case m, ok := <-batch.Messages():
			if !ok {
				return out, size, batch.Error()
			}
			meta, err := m.Metadata()
			if err != nil {
				return nil, 0, err
			}
			out = append(out, &jetstream.RawStreamMsg{
				Subject: m.Subject(), Sequence: meta.Sequence.Stream, Header: m.Headers(),
				Data: m.Data(), Time: meta.Timestamp,
			})
			size += len(m.Data()) + len(m.Subject())
			for k, vs := range m.Headers() {
				for _, v := range vs {
					size += len(k) + len(v) + 4
				}
			}
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }
