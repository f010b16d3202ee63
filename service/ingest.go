package service

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// Errors that end one stream's ingest.
var (
	// ErrStreamGone: the stream was deleted; its archive stays readable.
	ErrStreamGone = errors.New("service: stream deleted")
	// ErrRecreated: the stream was deleted and created again under the same
	// name; archiving it would mix two histories under one name.
	ErrRecreated = errors.New("service: stream recreated")
)

// policy is the resolved archive policy of one stream.
type policy struct {
	stream   string // the stream archived (its name in blocks and index)
	source   string // the stream consumed: the stream itself or its mirror
	kind     string // plain, kv or obj
	mirror   string // auto, always or never
	consumer string
	block    block.Options
	linger   time.Duration
}

// StreamStats counts one stream's ingest on this replica. Safe for
// concurrent use.
type StreamStats struct {
	Messages atomic.Int64 // messages archived
	Blocks   atomic.Int64 // blocks sealed and committed
	RawBytes atomic.Int64
	Bytes    atomic.Int64 // stored (compressed) bytes
	LastSeq  atomic.Uint64
	Pending  atomic.Uint64 // messages JetStream holds beyond the last one fetched
	Leader   atomic.Bool
	Skipped  atomic.Int64 // redelivered messages already archived
	Mismatch atomic.Int64 // redelivered messages whose content differs from the archive
}

// ingest runs the ingest of one stream while this replica leads it.
type ingest struct {
	js    jetstream.JetStream
	ix    *index.Index
	ctrl  *tier.Controller
	id    string // this replica's instance id
	log   *slog.Logger
	pol   policy
	stats *StreamStats

	// flushTimeout bounds sealing the partial block at shutdown.
	flushTimeout time.Duration
}

// state is what one leadership term of the ingest keeps between messages.
type state struct {
	head        index.Head
	rev         uint64
	incarnation string
	b           *block.Builder
	oldest      time.Time         // when the builder's first message arrived
	last        jetstream.Msg     // newest message added to the builder
	unacked     []jetstream.Msg   // messages to ack one by one (AckExplicit consumers)
	explicit    bool              // the consumer acks each message
	seen        map[uint64]uint32 // content sums of the block holding redelivered seqs
	seenBlock   uint64
}

// run ingests until ctx is done (then it seals the partial block, unless
// leadership was lost), the stream is deleted, or a commit is fenced.
func (in *ingest) run(ctx context.Context) error {
	in.stats.Leader.Store(true)
	defer in.stats.Leader.Store(false)
	st, cons, err := in.start(ctx)
	if err != nil {
		return err
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(4096, 16<<20))
	if err != nil {
		return fmt.Errorf("consume %s: %w", in.pol.source, err)
	}
	defer msgs.Stop()
	in.log.Info("ingest started", "after_seq", st.head.LastSeq, "consumer", in.pol.consumer)
	for {
		wait := time.Second
		if st.b.Len() > 0 {
			wait = time.Until(st.oldest.Add(in.pol.linger))
			if wait <= 0 {
				if err := in.seal(ctx, st); err != nil {
					return in.stop(ctx, st, err)
				}
				continue
			}
		}
		nctx, cancel := context.WithTimeout(ctx, wait)
		m, err := msgs.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return in.stop(ctx, st, nil)
		case errors.Is(err, context.DeadlineExceeded):
			continue
		case err != nil:
			return in.stop(ctx, st, fmt.Errorf("fetch from %s: %w", in.pol.source, err))
		}
		if err := in.add(ctx, st, m); err != nil {
			return in.stop(ctx, st, err)
		}
		if st.b.Full() {
			if err := in.seal(ctx, st); err != nil {
				return in.stop(ctx, st, err)
			}
		}
	}
}

// start reads the stream and its head and makes sure of the consumer.
func (in *ingest) start(ctx context.Context) (*state, jetstream.Consumer, error) {
	str, err := in.js.Stream(ctx, in.pol.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, fmt.Errorf("%w: %s", ErrStreamGone, in.pol.stream)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", in.pol.stream, err)
	}
	inc := str.CachedInfo().Created.UTC().Format(time.RFC3339Nano)
	if str, err = in.source(ctx, str); err != nil {
		return nil, nil, err
	}
	if _, err := in.ix.Repair(ctx, in.pol.stream); err != nil {
		return nil, nil, fmt.Errorf("repair index of %s: %w", in.pol.stream, err)
	}
	head, rev, err := in.ix.Head(ctx, in.pol.stream)
	if err != nil {
		return nil, nil, fmt.Errorf("head of %s: %w", in.pol.stream, err)
	}
	if head.LastSeq > 0 && head.Incarnation != "" && head.Incarnation != inc {
		return nil, nil, fmt.Errorf("%w: %s was created at %s; its archive holds seqs up to %d of the stream created at %s, kept readable and never overwritten",
			ErrRecreated, in.pol.stream, inc, head.LastSeq, head.Incarnation)
	}
	cons, err := in.consumer(ctx, str, head.LastSeq)
	if err != nil {
		return nil, nil, err
	}
	b, err := block.NewBuilder(in.pol.block)
	if err != nil {
		return nil, nil, err
	}
	in.stats.LastSeq.Store(head.LastSeq)
	return &state{head: head, rev: rev, incarnation: inc, b: b}, cons, nil
}

// source returns the stream to consume: the stream itself, or for a
// WorkQueue stream (whose acks delete work) and when configured so, a
// Limits-retention mirror of it, created here. A mirror keeps the
// original's sequence numbers, so blocks and index use the original's name.
func (in *ingest) source(ctx context.Context, str jetstream.Stream) (jetstream.Stream, error) {
	cfg := str.CachedInfo().Config
	wq := cfg.Retention == jetstream.WorkQueuePolicy
	switch {
	case in.pol.mirror == "never" && wq:
		return nil, fmt.Errorf("stream %s is a WorkQueue: archiving it without a mirror (mirror: never) would delete its work", in.pol.stream)
	case in.pol.mirror == "never" || (in.pol.mirror != "always" && !wq):
		in.pol.source = in.pol.stream
		return str, nil
	}
	name := mirrorPrefix + in.pol.stream
	m, err := in.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Description: "nts mirror of " + in.pol.stream + ", archived in its name",
		Mirror:      &jetstream.StreamSource{Name: in.pol.stream},
		Retention:   jetstream.LimitsPolicy,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		MaxMsgs:     cfg.MaxMsgs,
	})
	if err != nil {
		return nil, fmt.Errorf("mirror %s of %s: %w", name, in.pol.stream, err)
	}
	in.pol.source = name
	return m, nil
}

// consumer makes the durable consumer start right after the archive's head:
// the head is the truth, the consumer only a cursor derived from it. Each
// leadership term deletes whatever consumer an earlier term (or a deposed
// leader) left and creates it anew at head+1, so messages that an earlier
// leader fetched but never committed come at once instead of after AckWait,
// and a deposed leader still fetching finds its consumer gone. The consumer
// acks all (one ack per block) with an AckWait and MaxAckPending that let a
// whole block accumulate unacked.
func (in *ingest) consumer(ctx context.Context, str jetstream.Stream, after uint64) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       in.pol.consumer,
		Description:   "nts archive of " + in.pol.stream,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       2*in.pol.linger + time.Minute,
		MaxAckPending: -1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	}
	if err := str.DeleteConsumer(ctx, in.pol.consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("reset consumer %s: %w", in.pol.consumer, err)
	}
	cons, err := str.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", in.pol.consumer, err)
	}
	return cons, nil
}

// add puts one fetched message in the builder, or acks it when an earlier
// term already archived it.
func (in *ingest) add(ctx context.Context, st *state, m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	in.stats.Pending.Store(meta.NumPending)
	seq := meta.Sequence.Stream
	msg := block.Msg{
		Seq:     seq,
		Subject: m.Subject(),
		Header:  encodeHeader(m.Headers()),
		Data:    m.Data(),
		Time:    meta.Timestamp.UnixNano(),
	}
	switch {
	case seq <= st.head.LastSeq:
		in.stats.Skipped.Add(1)
		in.verify(ctx, st, msg)
		if err := m.Ack(); err != nil {
			in.log.Warn("ack of an archived message failed; it will come again", "seq", seq, "err", err)
		}
		return nil
	case st.b.Len() > 0 && seq <= st.b.LastSeq():
		return nil // redelivered while its block fills: the builder has it
	}
	if err := st.b.Add(msg); err != nil {
		return err
	}
	if st.b.Len() == 1 {
		st.oldest = time.Now()
	}
	st.last = m
	return nil
}

// seal writes the builder's block to every tier, commits it to the index and
// acks its messages, retrying tier and index failures until ctx is done.
func (in *ingest) seal(ctx context.Context, st *state) error {
	blk, bm, err := st.b.Seal()
	if err != nil {
		return err
	}
	key, err := tier.Key(in.pol.stream, bm.FirstSeq, bm.LastSeq)
	if err != nil {
		return err
	}
	if err := retry(ctx, in.log, "write block "+key, func() error { return in.ctrl.Put(ctx, key, blk) }); err != nil {
		return err
	}
	var tiers []string
	for _, l := range in.ctrl.Levels() {
		tiers = append(tiers, l.Tier.Name())
	}
	meta := index.BlockMeta{
		Stream: in.pol.stream, FirstSeq: bm.FirstSeq, LastSeq: bm.LastSeq,
		FirstTime: bm.FirstTime, LastTime: bm.LastTime, Count: uint64(bm.Count),
		RawSize: bm.RawSize, Size: bm.Size, Frames: bm.Frames, Codec: bm.Codec.String(),
		Checksum: bm.Checksum, Tiers: tiers, Key: key, Version: int(bm.Version),
		Created: time.Now().UnixNano(),
	}
	var rev uint64
	err = retry(ctx, in.log, "commit block "+key, func() error {
		var err error
		rev, err = in.ix.Commit(ctx, meta, st.rev, in.id, st.incarnation)
		if errors.Is(err, index.ErrFenced) || errors.Is(err, index.ErrConflict) || errors.Is(err, index.ErrInvalid) {
			return permanent{err}
		}
		return err
	})
	if err != nil {
		return err
	}
	st.rev = rev
	st.head = index.Head{Stream: in.pol.stream, LastSeq: bm.LastSeq, Block: meta, Leader: in.id, Incarnation: st.incarnation}
	in.stats.Blocks.Add(1)
	in.stats.Messages.Add(int64(bm.Count))
	in.stats.RawBytes.Add(bm.RawSize)
	in.stats.Bytes.Add(bm.Size)
	in.stats.LastSeq.Store(bm.LastSeq)
	in.ack(ctx, st)
	return nil
}

// ack acknowledges the committed block by its last message: the consumer
// acks all, so the server takes it for every earlier one. The ack waits for
// the server's confirmation; a lost ack means the messages come again, and
// are then acked as already archived.
func (in *ingest) ack(ctx context.Context, st *state) {
	if st.last == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := st.last.DoubleAck(actx); err != nil {
		in.log.Warn("block ack not confirmed; its messages may come again and will be skipped", "last_seq", st.head.LastSeq, "err", err)
	}
	st.last = nil
}

// stop ends a term. On shutdown (ctx cancelled, leadership not lost) the
// partial block is sealed, committed and acked, with its own time bound.
func (in *ingest) stop(ctx context.Context, st *state, cause error) error {
	if cause == nil && st.b.Len() > 0 && !errors.Is(context.Cause(ctx), index.ErrLeadershipLost) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.flushTimeout)
		defer cancel()
		if err := in.seal(fctx, st); err != nil {
			in.log.Error("partial block not sealed at shutdown; its messages will be delivered again", "err", err)
		} else {
			in.log.Info("partial block sealed at shutdown", "last_seq", st.head.LastSeq)
		}
	}
	return cause
}

// verify checks a redelivered, already archived message against the archive
// and reports loudly when its content differs; the archive is never changed.
func (in *ingest) verify(ctx context.Context, st *state, m block.Msg) {
	bm, ok := in.ix.Lookup(in.pol.stream, m.Seq)
	if !ok {
		return // a gap, or a block since expired
	}
	if st.seenBlock != bm.FirstSeq || st.seen == nil {
		st.seen, st.seenBlock = map[uint64]uint32{}, bm.FirstSeq
		err := in.ctrl.ReadRange(ctx, bm.Key, bm.Size, bm.FirstSeq, bm.LastSeq, func(a block.Msg, _ string) error {
			st.seen[a.Seq] = msgSum(a)
			return nil
		})
		if err != nil {
			in.log.Warn("cannot read the archive to check a redelivered message", "seq", m.Seq, "err", err)
			st.seen = nil
			return
		}
	}
	if sum, ok := st.seen[m.Seq]; ok && sum != msgSum(m) {
		in.stats.Mismatch.Add(1)
		in.log.Error("REDELIVERED MESSAGE DIFFERS FROM THE ARCHIVE; the archive keeps the first version",
			"stream", in.pol.stream, "seq", m.Seq, "subject", m.Subject)
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func msgSum(m block.Msg) uint32 {
	h := crc32.Update(0, castagnoli, []byte(m.Subject))
	h = crc32.Update(h, castagnoli, m.Header)
	return crc32.Update(h, castagnoli, m.Data)
}

// permanent marks an error retry must not retry.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// retry calls fn until it succeeds, returns a permanent error, or ctx is
// done, backing off exponentially with jitter from 100ms to 10s.
func retry(ctx context.Context, log *slog.Logger, what string, fn func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		var p permanent
		switch {
		case err == nil:
			if attempt > 1 {
				log.Info("succeeded after retries", "op", what, "attempts", attempt)
			}
			return nil
		case errors.As(err, &p):
			return p.err
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w (last error: %v)", what, context.Cause(ctx), err)
		}
		log.Warn("retrying", "op", what, "attempt", attempt, "in", backoff, "err", err)
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", what, context.Cause(ctx), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
