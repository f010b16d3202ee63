package service

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// Errors that end one stream's ingest.
var (
	// errDeliveryLost: a delivery of the consumer never reached the
	// handler; the term ends and the next fetches it again.
	errDeliveryLost = errors.New("service: deliveries lost")
	// ErrStreamGone: the stream was deleted; its archive stays readable.
	ErrStreamGone = errors.New("service: stream deleted")
	// ErrIncarnations: a stream was deleted and created again more times
	// than nts keeps archives apart for.
	ErrIncarnations = errors.New("service: too many incarnations of the stream")
)

// policy is the resolved archive policy of one stream.
type policy struct {
	stream   string // the JetStream stream followed
	archive  string // its name in blocks, tiers and index (see archiveFor)
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
	archive  atomic.Pointer[string]
}

// Archive is the name the stream's current incarnation is archived under
// ("" before its first term).
func (s *StreamStats) Archive() string {
	if p := s.archive.Load(); p != nil {
		return *p
	}
	return ""
}

// ingest runs the ingest of one stream while this replica leads it.
type ingest struct {
	js    jetstream.JetStream // on the ingest's own connection
	ctl   jetstream.JetStream // on the control connection: acks and cursor moves go through it (js when nil)
	ix    *index.Index
	ctrl  *tier.Controller
	id    string // this replica's instance id
	log   *slog.Logger
	pol   policy
	stats *StreamStats

	// flushTimeout bounds sealing the partial block at shutdown.
	flushTimeout time.Duration
}

// term is what one leadership term of the ingest keeps. The message
// handler and the linger timer share the builder being filled, under mu;
// the sealer owns rev. Full builders go to the sealer through jobs and come
// back through free once committed, so blocks are written while the next
// one fills, with at most 1+inFlight in memory.
type term struct {
	head        index.Head // head when the term began
	rev         uint64     // head revision, advanced by the sealer
	incarnation string
	mirror      jetstream.Stream // the mirror consumed, or nil

	mu        sync.Mutex
	b         *block.Builder
	last      *nats.Msg // newest message added to the builder
	lastAdded uint64    // highest seq handed to a builder this term
	delivered uint64    // consumer sequence of the last message handled
	// gen counts the builders handed over: a linger timer armed at gen
	// seals only while gen has not moved.
	gen     uint64
	linger  *time.Timer // seals the builder max_linger after its first message
	idle    *time.Timer // seals a quarter-full builder once its stream is quiet
	idleGen uint64      // the gen idle was armed for
	stopped bool        // consuming ended: the handler adds nothing more

	// skew is how far the server's clock, by which messages are stamped
	// when stored, is ahead of ours, estimated when the term made its
	// consumer.
	skew time.Duration

	seen      map[uint64]uint32 // content sums of the block holding redelivered seqs
	seenBlock uint64

	hdr     []byte   // scratch: the header bytes of the message being added
	hdrKeys []string // scratch: its header keys, sorted

	jobs chan *sealJob
	free chan *block.Builder
	acks sync.WaitGroup // block acks and cursor moves awaiting the server's confirmation

	// reader: messages come through the reader consumer, and committed
	// blocks move the durable consumer (the cursor) with resets; without
	// one, through the durable consumer, acked block by block.
	reader bool
	// fail ends the term from outside the handler: a block that failed, a
	// cursor gone.
	fail func(error)

	cursorMu   sync.Mutex
	cursorWant uint64 // the last seq committed
	cursorAt   uint64 // the last seq the cursor was moved past
	cursorBusy bool   // a move is on its way
}

// sealJob is one full (or lingered) builder and its last message, to ack;
// the writer fills in the rest and closes written.
type sealJob struct {
	b    *block.Builder
	last *nats.Msg

	written chan struct{}
	bm      block.Meta
	key     string
	tiers   []string
	err     error
}

// inFlight is how many sealed blocks may be written to the tiers at once
// while the next one fills; commits stay in order.
const inFlight = 2

// run ingests until ctx is done (then it seals the partial block, unless
// leadership was lost), the stream is deleted, or a commit is fenced.
func (in *ingest) run(ctx context.Context) error {
	in.stats.Leader.Store(true)
	defer in.stats.Leader.Store(false)
	t, cons, err := in.start(ctx)
	if err != nil {
		return err
	}

	// The sealer works under its own context: at shutdown it still seals
	// and commits the partial block (bounded by flushTimeout); it stops at
	// once when leadership is lost, and a failed commit stops consuming.
	lctx, stopLoop := context.WithCancelCause(ctx)
	defer stopLoop(nil)
	sctx, stopSealer := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopSealer(nil)
	t.fail = stopLoop
	sealed := make(chan struct{})
	go func() {
		defer close(sealed)
		in.sealer(sctx, t)
	}()

	in.log.Info("ingest started", "archive", in.pol.archive, "after_seq", t.head.LastSeq, "consumer", in.pol.consumer, "reads_through", cons.CachedInfo().Name)
	err = in.consume(lctx, t, cons)
	cause := context.Cause(lctx)
	switch {
	case errors.Is(context.Cause(ctx), index.ErrLeadershipLost):
		stopSealer(index.ErrLeadershipLost)
		err = index.ErrLeadershipLost
	case cause != nil && !errors.Is(cause, context.Canceled):
		err = cause // the sealer failed
	default:
		if ctx.Err() != nil && t.reader {
			in.dropReader(cons)
		}
		timer := time.AfterFunc(in.flushTimeout, func() { stopSealer(errors.New("flush timed out")) })
		defer timer.Stop()
		if t.b != nil && t.b.Len() > 0 {
			select {
			case t.jobs <- &sealJob{b: t.b, last: t.last}:
			case <-sctx.Done():
			}
			t.b = nil
		}
	}
	close(t.jobs)
	<-sealed
	if ctx.Err() != nil && err == nil {
		in.log.Info("ingest stopped; every fetched message is sealed", "last_seq", in.stats.LastSeq.Load())
	}
	return err
}

// consume delivers the consumer's messages to builders and hands a
// builder to the sealer when full, or when its oldest message has waited
// max_linger (a timer, so that a trickle seals on time). It returns nil
// when ctx is done, or the error that ended the consuming (the consumer
// deleted, a message that cannot be archived). When it returns, no
// message is being added and none will be.
//
// Messages come through a puller, one at a time on one goroutine. A
// handler that blocks (a sealer still busy with earlier blocks, a tier
// being retried) stops the pulls, but for at most one window more that the
// puller asks for meanwhile, which its subscription has room for. Should
// the client ever drop deliveries as a slow consumer, add notices the gap
// in the consumer sequence and the term ends.
func (in *ingest) consume(ctx context.Context, t *term, cons jetstream.Consumer) error {
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	info := cons.CachedInfo()
	msgs, bytes := pullWindow(info.Config, in.js.Conn().MaxPayload())
	p, err := newPuller(in.js.Conn(), apiPrefix(in.js.Options()),
		pullConfig{stream: info.Stream, consumer: info.Name, maxMsgs: msgs, maxBytes: bytes},
		func(m *nats.Msg) {
			if err := in.handle(ctx, t, m); err != nil {
				fail(err)
			}
		},
		func(err error) { fail(fmt.Errorf("fetch from %s: %w", in.pol.source, err)) }, in.log)
	if err != nil {
		return fmt.Errorf("consume %s: %w", in.pol.source, err)
	}
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	p.Stop()
	t.mu.Lock()
	t.stopped = true
	if t.linger != nil {
		t.linger.Stop()
	}
	if t.idle != nil {
		t.idle.Stop()
	}
	t.mu.Unlock()
	return err
}

// apiPrefix is the JetStream API prefix of o: its APIPrefix, or that of
// its domain.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix == "":
		return jetstream.DefaultAPIPrefix
	case !strings.HasSuffix(o.APIPrefix, "."):
		return o.APIPrefix + "."
	}
	return o.APIPrefix
}

// handle puts one delivered message in the builder and hands the builder
// over when it is full, or when it holds enough and the stream has gone
// quiet; it arms the linger timer on a builder's first message. An error
// ends the consuming: the handler adds nothing more.
func (in *ingest) handle(ctx context.Context, t *term, m *nats.Msg) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.b == nil {
		return nil // not acked: a later term fetches it again
	}
	meta, added, err := in.add(ctx, t, m)
	switch {
	case err != nil:
		t.stopped = true
		return err
	case !added:
		return nil
	case t.b.Full():
		in.handOver(ctx, t)
		return nil
	case t.b.Len() == 1:
		t.linger = in.sealAfter(ctx, t, in.pol.linger)
	}
	if meta.pending == 0 {
		in.caughtUp(ctx, t, meta)
	}
	return nil
}

// caughtUp decides what becomes of the builder when the consumer has
// nothing pending after the message just added (meta's); t.mu is held.
// Ages are counted from when the server stored a message, by the server's
// clock as the term estimated it (t.skew):
//
//   - A builder whose oldest message was stored max_linger ago or more is
//     handed over at once, whatever it holds: that message has waited its
//     max_linger already (the tail of a backlog, or of the catch-up after a
//     restart or failover), and waiting max_linger again after it arrived
//     would only delay its archiving.
//   - A builder holding a quarter of its target size is handed over once no
//     message has come for idleAfter(max_linger) since the last one was
//     stored: one timer a builder, pushed back by every message; at once
//     when the last message is that old already.
//   - A smaller builder of fresh messages (a trickle) waits for its linger
//     timer, so that a slow stream still makes blocks of max_linger's worth
//     rather than one a message.
func (in *ingest) caughtUp(ctx context.Context, t *term, meta ackMeta) {
	now := time.Now().Add(t.skew).UnixNano()
	if time.Duration(now-t.b.FirstTime()) >= in.pol.linger {
		in.handOver(ctx, t)
		return
	}
	if t.b.RawSize() < t.b.Options().TargetSize/idleFill {
		return
	}
	wait := idleAfter(in.pol.linger) - time.Duration(now-meta.time)
	switch {
	case wait <= 0:
		in.handOver(ctx, t)
	case t.idle != nil && t.idleGen == t.gen:
		t.idle.Reset(wait)
	default:
		t.idle, t.idleGen = in.sealAfter(ctx, t, wait), t.gen
	}
}

// serverSkew estimates how far the server's clock is ahead of ours from a
// timestamp ts the server put in a reply to a request sent at sent and
// answered at got (our clock): ts less the midpoint, within half the round
// trip. A reply without a timestamp gives 0.
func serverSkew(sent, got, ts time.Time) time.Duration {
	if ts.IsZero() {
		return 0
	}
	return ts.Sub(sent.Add(got.Sub(sent) / 2))
}

// A builder holding at least 1/idleFill of its target size seals once its
// stream has gone quiet: the consumer had nothing pending after the last
// message added, and no message came for idleAfter(max_linger) since that
// message was stored (see caughtUp). The tail of a burst is then archived
// idleAfter after it, and the tail of a drained backlog at once, instead of
// max_linger later, while a stream flowing steadily still fills whole
// blocks and a trickle still seals by max_linger.
const (
	idleFill = 4
	maxIdle  = 100 * time.Millisecond
)

// idleAfter is how long a stream must be quiet for an idle seal: a quarter
// of max_linger, at most maxIdle.
func idleAfter(linger time.Duration) time.Duration { return min(linger/4, maxIdle) }

// The client holds at most pullBytes of a stream fetched ahead of the
// handler (more only where the server allows larger messages, see
// fetchWindow): room for the handler never to wait on a nearby server,
// while a replica's memory stays bounded. The peak RSS of a replica with a
// 64 MiB memory tier is 119–126 MiB at 4 MiB against 135–139 at 16, and a
// wider window drains no faster: 8 interleaved drains of 50k messages of 4
// KiB took a median of 467 ms at 4 MiB, 473 at 8 and 451 at 16, within
// the spread of the reference consumer's 329–468 ms in the same rounds.
//
// The client asks for more once less than half of the window is left (2
// MiB here), for what was used. Across a link of round trip r, a stream
// ingests at most 2 to 4 MiB per r. Asking once a quarter is used, so that
// the server always has a request in hand at the same bound, was no
// faster: 10 interleaved drains of 50k messages of 4 KiB took a median of
// 467 ms against 431.
const pullBytes = 4 << 20

// fetchWindow is the window fetched ahead from a server of max_payload
// maxPayload: pullBytes, or room for the largest message it may deliver
// where that is more. The server counts a message's subject, ack reply,
// headers and payload against a pull request's bytes and never delivers one
// that does not fit: with less room than that, the stream's ingest would
// stop at its first large message. Headers are within max_payload when
// published, but a mirror or source adds its own; maxOverhead is room for
// them and the subjects.
func fetchWindow(maxPayload int64) int {
	return int(max(pullBytes, maxPayload+maxOverhead))
}

const maxOverhead = 64 << 10

// pullMsgs is the window's count of messages where nothing bounds it: the
// bytes bind first.
const pullMsgs = 1 << 20

// pullWindow is the window, in messages and bytes, that the ingest fetches
// ahead from a consumer of cfg: fetchWindow's bytes, within the most
// messages a pull request of the consumer may ask for, which it inherits
// from the server's jetstream limits (max_request_batch): the server
// refuses a request for more.
func pullWindow(cfg jetstream.ConsumerConfig, maxPayload int64) (msgs, bytes int) {
	msgs = pullMsgs
	if cfg.MaxRequestBatch > 0 {
		msgs = min(msgs, cfg.MaxRequestBatch)
	}
	return msgs, fetchWindow(maxPayload)
}

// sealAfter returns a timer that hands the builder over after d, if it is
// then still the one filling now (t.gen has not moved); t.mu is held.
func (in *ingest) sealAfter(ctx context.Context, t *term, d time.Duration) *time.Timer {
	gen := t.gen
	return time.AfterFunc(d, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.stopped || t.gen != gen || t.b == nil || t.b.Len() == 0 {
			return
		}
		in.handOver(ctx, t)
	})
}

// handOver gives the builder to the sealer and takes a free one, waiting
// while the sealer is still busy with the block before; t.mu is held. When
// ctx ends first, the builder stays (the shutdown seals it, or a lost
// leadership drops it).
func (in *ingest) handOver(ctx context.Context, t *term) {
	select {
	case t.jobs <- &sealJob{b: t.b, last: t.last}:
	case <-ctx.Done():
		return
	}
	t.b, t.last = nil, nil
	t.gen++
	if t.linger != nil {
		t.linger.Stop()
		t.linger = nil
	}
	select {
	case t.b = <-t.free:
	case <-ctx.Done():
	}
}

// start reads the stream and its head and makes sure of the consumer.
func (in *ingest) start(ctx context.Context) (*term, jetstream.Consumer, error) {
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
	var mirror jetstream.Stream
	if in.pol.source != in.pol.stream {
		mirror = str
	}
	head, rev, err := in.archiveFor(ctx, inc)
	if err != nil {
		return nil, nil, err
	}
	in.pol.block.Stream = in.pol.archive
	// KV and object store streams get a subject index and a filter, which
	// the index entry carries: within a quarter of a NATS message.
	in.pol.block.Subjects = in.pol.kind == "kv" || in.pol.kind == "obj"
	in.pol.block.MaxFilterSize = int(min(in.js.Conn().MaxPayload()/4, block.DefaultMaxFilterSize))
	archive := in.pol.archive
	in.stats.archive.Store(&archive)
	cons, err := in.consumer(ctx, str, head.LastSeq)
	if err != nil {
		return nil, nil, err
	}
	reader := false
	if in.canReset(ctx) {
		rd, err := in.reader(ctx, str, head.LastSeq)
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			cons, reader = rd, true
		case errors.As(err, &apiErr):
			// A stream or account limit on consumers, most likely.
			in.log.Warn("the server refused the reader; reading through the durable consumer, acked block by block", "err", err)
		default:
			return nil, nil, err
		}
	}
	// The server's clock, against which the ages of messages are told,
	// read with one request of its own so that the estimate is within
	// half a round trip.
	var skew time.Duration
	sent := time.Now()
	if info, err := cons.Info(ctx); err == nil {
		skew = serverSkew(sent, time.Now(), info.TimeStamp)
	} else {
		in.log.Debug("consumer info for the server's clock failed; ages of messages are told by this clock", "err", err)
	}
	b, err := block.NewBuilder(in.pol.block)
	if err != nil {
		return nil, nil, err
	}
	in.stats.LastSeq.Store(head.LastSeq)
	t := &term{head: head, rev: rev, incarnation: inc, mirror: mirror, b: b, lastAdded: head.LastSeq, skew: skew,
		reader: reader, cursorAt: head.LastSeq, cursorWant: head.LastSeq,
		jobs: make(chan *sealJob), free: make(chan *block.Builder, inFlight+1)} // room for every builder
	for range inFlight {
		spare, err := block.NewBuilder(in.pol.block)
		if err != nil {
			return nil, nil, err
		}
		t.free <- spare
	}
	return t, cons, nil
}

// maxIncarnations bounds how many lives of one stream name are archived
// apart.
const maxIncarnations = 1000

// archiveFor finds the archive of this incarnation of the stream, created at
// inc, and returns its head. The first incarnation is archived under the
// stream's name. A stream deleted and created again restarts its sequences
// at 1, so each later incarnation is archived apart, under "<name>~2",
// "<name>~3", ...: the earlier archives stay readable under their names and
// are never overwritten. Each archive's head records the incarnation (the
// stream's creation time) it belongs to.
func (in *ingest) archiveFor(ctx context.Context, inc string) (index.Head, uint64, error) {
	for n := 1; n <= maxIncarnations; n++ {
		name := in.pol.stream
		if n > 1 {
			name = fmt.Sprintf("%s~%d", in.pol.stream, n)
		}
		if err := tier.ValidateStream(name); err != nil {
			return index.Head{}, 0, fmt.Errorf("archive name for incarnation %d of %s: %w", n, in.pol.stream, err)
		}
		if _, err := in.ix.Repair(ctx, name); err != nil {
			return index.Head{}, 0, fmt.Errorf("repair index of %s: %w", name, err)
		}
		head, rev, err := in.ix.Head(ctx, name)
		if err != nil {
			return index.Head{}, 0, fmt.Errorf("head of %s: %w", name, err)
		}
		if head.LastSeq == 0 || head.Incarnation == "" || head.Incarnation == inc {
			if n > 1 {
				in.log.Warn("stream was deleted and created again: this incarnation is archived apart; earlier ones stay readable",
					"archive", name, "created", inc)
			}
			in.pol.archive = name
			return head, rev, nil
		}
	}
	return index.Head{}, 0, fmt.Errorf("%w: %s", ErrIncarnations, in.pol.stream)
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
	if cfg.Retention == jetstream.InterestPolicy {
		// A mirror's own consumer acks nothing and holds no interest.
		in.log.Warn("mirroring an Interest stream (mirror: always): messages its consumers ack before the mirror copies them are not archived; mirror: auto archives it directly and holds interest",
			"stream", in.pol.stream)
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

// consumerDescription begins the description of every consumer the
// ingest makes: what tells one of its own from a user's.
const consumerDescription = "nts archive of "

// consumer makes the durable consumer start right after the archive's head:
// the head is the truth, the consumer only a cursor derived from it. Each
// leadership term deletes whatever consumer an earlier term (or a deposed
// leader) left and creates it anew at head+1, so messages that an earlier
// leader fetched but never committed come at once instead of after AckWait,
// and a deposed leader still fetching finds its consumer gone; on an
// Interest stream, resetConsumer moves it instead. Where the server resets
// consumers, the ingest reads through a reader (see reader) and moves this
// consumer past each committed block. Elsewhere it fetches from this one,
// which acks all (one ack per block) with an AckWait and MaxAckPending that
// let a whole block accumulate unacked.
func (in *ingest) consumer(ctx context.Context, str jetstream.Stream, after uint64) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       in.pol.consumer,
		Description:   consumerDescription + in.pol.stream,
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
	if str.CachedInfo().Config.Retention == jetstream.InterestPolicy {
		c, err := in.resetConsumer(ctx, str, cfg, after)
		switch {
		case err == nil:
			return c, nil
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			in.log.Warn("cannot reset the consumer of an Interest stream, so it is made anew: messages every other consumer acked while nts was away are gone",
				"consumer", in.pol.consumer, "err", err)
		}
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

// resetConsumer moves the consumer an earlier term left on an Interest
// stream to start right after the archive's head (cfg being what consumer
// would create), rather than deleting it: an Interest stream keeps a
// message while some consumer still has to ack it, and deleting nts's
// consumer would drop at once every message the others have acked, archived
// or not. The consumer stays the same one from term to term, so nts holds
// its interest in the stream even while no replica runs. It returns
// jetstream.ErrConsumerNotFound when there is none yet, and an error when
// the server cannot reset a consumer or the one there is not nts's.
func (in *ingest) resetConsumer(ctx context.Context, str jetstream.Stream, cfg jetstream.ConsumerConfig, after uint64) (jetstream.Consumer, error) {
	c, err := str.Consumer(ctx, in.pol.consumer)
	if err != nil {
		return nil, err
	}
	old := c.CachedInfo().Config
	if !strings.HasPrefix(old.Description, consumerDescription) || old.AckPolicy != jetstream.AckAllPolicy {
		return nil, fmt.Errorf("consumer %s is not one nts made (description %q, ack policy %s)", in.pol.consumer, old.Description, old.AckPolicy)
	}
	if _, err := str.ResetConsumerToSequence(ctx, in.pol.consumer, after+1); err != nil {
		return nil, fmt.Errorf("reset consumer %s to %d: %w", in.pol.consumer, after+1, err)
	}
	// Where it starts cannot change; the rest follows the configuration.
	// The reset consumer serves as it is should the update fail.
	cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	updated, err := str.UpdateConsumer(ctx, cfg)
	if err != nil {
		in.log.Warn("consumer reset but not updated to the configuration", "consumer", in.pol.consumer, "err", err)
		return c, nil
	}
	return updated, nil
}

// apiLevelReset is the JetStream API level that brought consumer resets
// (nats-server 2.14).
const apiLevelReset = 4

// canReset reports whether the server resets consumers to a sequence, so
// that the ingest may read through a reader and move the durable consumer
// as its cursor. Servers before it are read through the durable consumer,
// acked block by block.
func (in *ingest) canReset(ctx context.Context) bool {
	info, err := in.js.AccountInfo(ctx)
	if err != nil {
		in.log.Warn("account info failed; reading through the durable consumer, acked block by block", "err", err)
		return false
	}
	if info.API.Level < apiLevelReset {
		in.log.Info("the server resets no consumer (JetStream API level below 4, nats-server before 2.14): reading through the durable consumer, acked block by block",
			"api_level", info.API.Level)
		return false
	}
	return true
}

// readerSuffix names the reader after the durable consumer.
const readerSuffix = "-reader"

// readerIdle is how long a reader may go with no pull request waiting
// before the server deletes it: what a replica that died leaves behind is
// gone after that.
const readerIdle = 5 * time.Minute

// reader makes the consumer the ingest reads the stream through when the
// server can reset consumers: it starts right after the archive's head and
// acks nothing (AckNone). The durable consumer, which consumer made at the
// same place, is then the archive's cursor, never fetched from: each
// committed block moves it past its last message with a reset, which on an
// Interest stream releases the messages as acks would. The messages are
// exactly as safe, since nothing moves the cursor before its block is
// committed and every term starts from the head, but the server keeps no
// pending entry or delivery record per message for the reader: an
// acknowledged consumer's bookkeeping of the un-acked messages of a whole
// block slowed drains of small messages by about a fifth (see the README),
// and on a replicated stream each delivery of one goes through its
// consumer's Raft group first. Like the durable consumer, the reader is
// deleted and made anew by each term, so that a deposed leader still
// reading finds it gone; a replica shutting down deletes its own
// (dropReader), and one that nothing reads from any more (its replica died)
// expires after readerIdle.
func (in *ingest) reader(ctx context.Context, str jetstream.Stream, after uint64) (jetstream.Consumer, error) {
	name := in.pol.consumer + readerSuffix
	cfg := jetstream.ConsumerConfig{
		Name:              name,
		Description:       readerDescription + in.pol.stream,
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: readerIdle,
		// Its state is worth nothing past the term: the head is the truth.
		MemoryStorage: true,
	}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	}
	if err := str.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("reset reader %s: %w", name, err)
	}
	cons, err := str.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reader %s: %w", name, err)
	}
	return cons, nil
}

// dropReader deletes the term's reader when the replica shuts down, once
// nothing fetches from it any more, so that a replica stopped cleanly
// leaves only its cursor on the stream rather than a reader listed there
// until readerIdle passes. It runs right after the shutdown began, before
// the flush. A lock whose renewal has not succeeded for two thirds of its
// TTL ends the term as lost, so when the shutdown begins the lock holds for
// a third of its TTL more at least, and dropReader gives up well within
// that: no successor can have made its own reader yet. A failure is only
// logged; the next term deletes the reader anyway, and readerIdle ends it.
func (in *ingest) dropReader(cons jetstream.Consumer) {
	js := in.control()
	info := cons.CachedInfo()
	if info == nil || !js.Conn().IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(dropReaderTimeout, in.ix.LockTTL()/4))
	defer cancel()
	if err := js.DeleteConsumer(ctx, info.Stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		in.log.Debug("deleting the reader at shutdown", "consumer", info.Name, "err", err)
	}
}

// dropReaderTimeout bounds dropReader, within a quarter of the lock TTL.
const dropReaderTimeout = 2 * time.Second

// readerDescription begins the description of every reader the ingest
// makes.
const readerDescription = "nts reader of "

// control is JetStream on the control connection, where acks and cursor
// moves go: their replies do not wait there behind the deliveries queued
// for the ingest's own connection.
func (in *ingest) control() jetstream.JetStream {
	if in.ctl != nil {
		return in.ctl
	}
	return in.js
}

// cursorEvery spaces the moves of a cursor: the server writes the
// consumer's state file at each.
const cursorEvery = 100 * time.Millisecond

// moveCursor moves the durable consumer past seq, the last message of a
// committed block, when the term reads through a reader. Moves go out one
// at a time, at most one per cursorEvery, each to the newest seq committed
// by then, so the cursor never steps back; the sealer waits for the last
// before it returns. A cursor that is gone (deleted by hand) ends the term,
// so that the next makes it anew.
func (in *ingest) moveCursor(ctx context.Context, t *term, seq uint64) {
	t.cursorMu.Lock()
	t.cursorWant = seq
	if t.cursorBusy {
		t.cursorMu.Unlock()
		return
	}
	t.cursorBusy = true
	t.cursorMu.Unlock()
	t.acks.Go(func() {
		var last time.Time
		for {
			if !last.IsZero() {
				time.Sleep(cursorEvery - time.Since(last))
			}
			t.cursorMu.Lock()
			want := t.cursorWant
			// A leader deposed (the sealer's ctx ends) moves it no more: its
			// successor has made the cursor anew at the head.
			if want == t.cursorAt || ctx.Err() != nil {
				t.cursorBusy = false
				t.cursorMu.Unlock()
				return
			}
			t.cursorMu.Unlock()
			last = time.Now()
			if err := in.resetCursor(ctx, want); err != nil {
				in.cursorFailed(ctx, t, want, err)
			}
			t.cursorMu.Lock()
			t.cursorAt = want
			t.cursorMu.Unlock()
		}
	})
}

// cursorFailed acts on a cursor move that failed: a cursor that is gone
// (deleted by hand; the server answers no reset of a consumer it does not
// have, so the move waits out its timeout first) ends the term, so that the
// next makes it anew; otherwise the next block's move covers this one.
func (in *ingest) cursorFailed(ctx context.Context, t *term, seq uint64, err error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, cerr := in.control().Consumer(cctx, in.pol.source, in.pol.consumer); errors.Is(cerr, jetstream.ErrConsumerNotFound) {
		t.fail(fmt.Errorf("%w: %s, moving it past %d", jetstream.ErrConsumerDeleted, in.pol.consumer, seq))
		return
	}
	in.log.Warn("consumer not moved past a committed block; the next block's move covers it", "consumer", in.pol.consumer, "last_seq", seq, "err", err)
}

// resetCursor resets the durable consumer to start after seq, and checks
// that the server did.
func (in *ingest) resetCursor(ctx context.Context, seq uint64) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	resp, err := in.control().ResetConsumerToSequence(rctx, in.pol.source, in.pol.consumer, seq+1)
	if err != nil {
		return err
	}
	if resp.ResetSeq != seq+1 {
		return fmt.Errorf("reset to %d, not %d", resp.ResetSeq, seq+1)
	}
	return nil
}

// add puts one fetched message in the builder, or acks it when an earlier
// term already archived it; it reports whether it added it.
func (in *ingest) add(ctx context.Context, t *term, m *nats.Msg) (ackMeta, bool, error) {
	meta, err := parseAck(m.Reply)
	if err != nil {
		return meta, false, fmt.Errorf("message metadata: %w: %q", err, m.Reply)
	}
	// The term's consumer is new, so its deliveries are numbered from 1
	// with no gap. A gap means deliveries were lost on their way (the
	// client dropped them as a slow consumer, or a reconnect lost them):
	// adding this message would put a hole in the builder that a later
	// block's ack-all would ack. The term ends instead, sealing what came
	// before the gap, and the next starts again after the head.
	if meta.cseq != t.delivered+1 {
		return meta, false, fmt.Errorf("%w: consumer sequence %d after %d", errDeliveryLost, meta.cseq, t.delivered)
	}
	t.delivered = meta.cseq
	in.stats.Pending.Store(meta.pending)
	seq := meta.seq
	switch {
	case seq <= t.head.LastSeq:
		in.stats.Skipped.Add(1)
		in.verify(ctx, t, in.toBlock(t, m, seq, meta.time))
		if t.reader {
			return meta, false, nil // the reader acks nothing
		}
		if err := m.Respond(ackAck); err != nil {
			in.log.Warn("ack of an archived message failed; it will come again", "seq", seq, "err", err)
		}
		return meta, false, nil
	case seq <= t.lastAdded:
		return meta, false, nil // redelivered while its block fills or seals
	}
	if err := t.b.Add(in.toBlock(t, m, seq, meta.time)); err != nil {
		return meta, false, err
	}
	t.last, t.lastAdded = m, seq
	return meta, true, nil
}

// toBlock is m as a block holds it; its header bytes are t's scratch,
// valid until the next call.
func (in *ingest) toBlock(t *term, m *nats.Msg, seq uint64, ts int64) block.Msg {
	bm := block.Msg{Seq: seq, Subject: m.Subject, Data: m.Data, Time: ts}
	if len(m.Header) > 0 {
		t.hdr, t.hdrKeys = appendHeader(t.hdr[:0], t.hdrKeys, m.Header)
		bm.Header = t.hdr
	}
	if in.pol.kind == "kv" {
		bm.Mark = kvMark(m.Header)
	}
	return bm
}

// sealer seals and writes the jobs' blocks, every builder handed over at
// once (at most 1+inFlight, when the handler waits for a free one), and
// commits and acks them one by one in order. It returns when t.jobs is
// closed and every block handed over is committed, or when a block fails:
// then it reports the error through t.fail and commits nothing after it.
func (in *ingest) sealer(ctx context.Context, t *term) {
	queue := make(chan *sealJob, inFlight)
	go func() {
		defer close(queue)
		for job := range t.jobs {
			job.written = make(chan struct{})
			go func() {
				defer close(job.written)
				in.write(ctx, job)
			}()
			queue <- job
		}
	}()
	var failed error
	for job := range queue {
		<-job.written
		if failed == nil {
			failed = job.err
			if failed == nil {
				failed = in.commit(ctx, t, job)
			}
			if failed != nil {
				t.fail(failed)
			}
		}
		if failed == nil {
			t.free <- job.b
		}
	}
	t.acks.Wait()
}

// write seals a builder's block and writes it to every tier, retrying
// failures until ctx is done.
func (in *ingest) write(ctx context.Context, job *sealJob) {
	blk, bm, err := job.b.Seal()
	if err != nil {
		job.err = err
		return
	}
	job.bm = bm
	if job.key, job.err = tier.Key(in.pol.archive, bm.FirstSeq, bm.LastSeq); job.err != nil {
		return
	}
	job.err = retry(ctx, in.log, "write block "+job.key, func() (err error) {
		job.tiers, err = in.ctrl.Put(ctx, job.key, blk)
		return err
	})
}

// commit records a written block in the index, moving the stream's head,
// and acks its messages; it retries index failures until ctx is done, but
// never a fenced or conflicting commit.
func (in *ingest) commit(ctx context.Context, t *term, job *sealJob) error {
	bm := job.bm
	meta := index.BlockMeta{
		Stream: in.pol.archive, FirstSeq: bm.FirstSeq, LastSeq: bm.LastSeq,
		FirstTime: bm.FirstTime, LastTime: bm.LastTime, Count: uint64(bm.Count),
		RawSize: bm.RawSize, Size: bm.Size, Frames: bm.Frames, Codec: bm.Codec.String(),
		Checksum: bm.Checksum, Tiers: job.tiers, Key: job.key, Version: int(bm.Version),
		Created: time.Now().UnixNano(), Filter: bm.Filter,
	}
	var rev uint64
	err := retry(ctx, in.log, "commit block "+job.key, func() error {
		var err error
		rev, err = in.ix.Commit(ctx, meta, t.rev, in.id, t.incarnation)
		if errors.Is(err, index.ErrFenced) || errors.Is(err, index.ErrConflict) || errors.Is(err, index.ErrInvalid) {
			return permanent{err}
		}
		return err
	})
	if err != nil {
		return err
	}
	t.rev = rev
	in.stats.Blocks.Add(1)
	in.stats.Messages.Add(int64(bm.Count))
	in.stats.RawBytes.Add(bm.RawSize)
	in.stats.Bytes.Add(bm.Size)
	in.stats.LastSeq.Store(bm.LastSeq)
	// The ack's (or the cursor move's) confirmation is awaited apart, so
	// that the next block's commit does not wait for it; the sealer waits
	// for every one before it returns. So is the purge of what a mirror
	// holds of the block.
	if t.reader {
		in.moveCursor(ctx, t, bm.LastSeq)
	} else {
		t.acks.Go(func() { in.ack(ctx, job.last, bm.LastSeq) })
	}
	if t.mirror != nil {
		t.acks.Go(func() { in.purgeMirror(ctx, t.mirror, bm.LastSeq) })
	}
	in.log.Debug("block committed", "first_seq", bm.FirstSeq, "last_seq", bm.LastSeq, "msgs", bm.Count, "raw", bm.RawSize, "stored", bm.Size)
	return nil
}

// ack acknowledges a committed block by its last message: the consumer acks
// all, so the server takes it for every earlier one. The ack waits for the
// server's confirmation; a lost ack means the messages come again, and are
// then acked as already archived.
func (in *ingest) ack(ctx context.Context, last *nats.Msg, seq uint64) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// The ack is published on the other connection where there is one, so
	// that its confirmation does not wait behind the deliveries queued for
	// this one; as DoubleAck does, it waits for the server's reply.
	if _, err := in.control().Conn().RequestWithContext(actx, last.Reply, ackAck); err != nil {
		in.log.Warn("block ack not confirmed; its messages may come again and will be skipped", "last_seq", seq, "err", err)
	}
}

// purgeMirror drops from the mirror the messages up to seq, which the
// archive now holds: the mirror only carries the original's messages to the
// ingest, and without it would keep them all where the original (a
// WorkQueue or Interest stream) sets no limit. A purge that fails is logged;
// the next block's purge covers it.
func (in *ingest) purgeMirror(ctx context.Context, mirror jetstream.Stream, seq uint64) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := mirror.Purge(pctx, jetstream.WithPurgeSequence(seq+1)); err != nil {
		in.log.Warn("purge of the archived part of the mirror failed; the next block's purge covers it", "mirror", in.pol.source, "below_seq", seq+1, "err", err)
	}
}

// verify checks a redelivered, already archived message against the archive
// and reports loudly when its content differs; the archive is never changed.
func (in *ingest) verify(ctx context.Context, st *term, m block.Msg) {
	bm, ok := in.ix.Lookup(in.pol.archive, m.Seq)
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
			"archive", in.pol.archive, "seq", m.Seq, "subject", m.Subject)
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
