package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for Options.
const (
	// DefaultBucket is the name of the index bucket.
	DefaultBucket = "nts_index"
	// DefaultLockTTL is how long a leader's lock outlives its last renewal.
	DefaultLockTTL = 10 * time.Second
	// DefaultMarkerTTL is how long the marker of a deleted block entry stays
	// in the bucket.
	DefaultMarkerTTL = 24 * time.Hour
)

// minTTL is the shortest lock and marker TTL accepted; JetStream does not
// expire messages at a finer grain.
const minTTL = 100 * time.Millisecond

// Options configures Open. The zero value is usable.
type Options struct {
	// Bucket is the KV bucket holding the block index (default
	// "nts_index").
	Bucket string
	// Replicas is the number of replicas of both buckets in clustered
	// JetStream (default 1).
	Replicas int
	// Storage is the storage of both buckets (default file).
	Storage jetstream.StorageType
	// MaxBytes bounds each bucket the index creates (its stream's
	// max_bytes), as an account that requires a bound on every stream
	// needs; 0 sets none. It does not change a bucket that exists. A full
	// bucket refuses new entries (a KV bucket discards new ones), so
	// commits fail and are retried and nothing indexed is dropped: size it
	// well above what the archive needs, a few hundred bytes a block.
	MaxBytes int64
	// LockBucket is the KV bucket holding the leader locks (default
	// Bucket+"_locks").
	LockBucket string
	// LockTTL is how long a lock outlives its holder's last renewal; a
	// dead or frozen leader is replaced about that long after it stopped
	// renewing (default 10s). A lock bucket that already exists keeps its
	// own TTL, which then wins.
	LockTTL time.Duration
	// MarkerTTL is how long the delete marker of a deleted block entry
	// stays in the bucket, so that a watch which falls behind still sees
	// the deletion (default 24h). Servers before 2.11 keep markers.
	MarkerTTL time.Duration
	// AtomicCommit makes Commit write the block entry and the head in one
	// atomic batch (nats-server 2.12 and later) instead of two conditional
	// writes. Both fence a deposed leader alike; the batch leaves no crash
	// window for Repair to close, but costs more: the server stages each
	// batch to an R1 file-backed bucket in a synced file store of its own
	// (see the package documentation for figures). Against a server that
	// cannot, Commit writes in two steps.
	AtomicCommit bool
	// Logger receives the index's warnings (malformed entries, bucket
	// settings that differ from the options). Nil logs nothing.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.LockBucket == "" {
		o.LockBucket = o.Bucket + "_locks"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.LockTTL == 0 {
		o.LockTTL = DefaultLockTTL
	}
	if o.MarkerTTL == 0 {
		o.MarkerTTL = DefaultMarkerTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Bucket == o.LockBucket:
		return o, fmt.Errorf("%w: index and lock buckets are both %q", ErrInvalid, o.Bucket)
	case o.Replicas < 1 || o.Replicas > 5:
		return o, fmt.Errorf("%w: %d replicas (want 1 to 5)", ErrInvalid, o.Replicas)
	case o.LockTTL < minTTL:
		return o, fmt.Errorf("%w: lock TTL %v is shorter than %v", ErrInvalid, o.LockTTL, minTTL)
	case o.MarkerTTL < time.Second:
		// JetStream's per-message TTLs count whole seconds.
		return o, fmt.Errorf("%w: marker TTL %v is shorter than 1s", ErrInvalid, o.MarkerTTL)
	case o.MaxBytes < 0:
		return o, fmt.Errorf("%w: max bytes %d is negative", ErrInvalid, o.MaxBytes)
	}
	return o, nil
}

// Index is the block index of every archived stream, kept in a JetStream KV
// bucket, with an in-memory view of it kept current by a watch, and the
// per-stream leader locks. It is safe for concurrent use.
type Index struct {
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	kvStream  jetstream.Stream // the stream behind kv, for raw reads
	locks     jetstream.KeyValue
	subjPre   string // "$KV.<bucket>."
	lockTTL   time.Duration
	markerTTL time.Duration // 0 when the bucket cannot expire markers
	atomic    bool          // commit with one atomic batch
	log       *slog.Logger

	view view

	consumer  jetstream.ConsumeContext // follows the bucket into the view
	watcher   jetstream.Consumer       // the ordered consumer behind it
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    chan struct{} // closed by Close
}

// Open creates or binds the index and lock buckets, loads every block and
// head entry into the in-memory view, and keeps the view current with a
// watch until Close. It returns once the view holds the bucket's content as
// of the call.
//
// With Options.AtomicCommit, Open enables atomic batch publishing on the
// index bucket's stream where the server supports it (nats-server 2.12 and
// later).
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Index, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ix := &Index{
		js:      js,
		subjPre: "$KV." + o.Bucket + ".",
		log:     o.Logger,
		closed:  make(chan struct{}),
	}
	ix.view.init()
	if err := ix.openIndexBucket(ctx, o); err != nil {
		return nil, err
	}
	if err := ix.openLockBucket(ctx, o); err != nil {
		return nil, err
	}
	if err := ix.startWatch(ctx); err != nil {
		return nil, err
	}
	return ix, nil
}

// Close stops following the bucket, waits for the view's last update and
// deletes the watch's consumer from the server. The view keeps what it held.
// Close is idempotent; calls made after it that need the buckets may fail.
func (ix *Index) Close() error {
	ix.closeOnce.Do(func() {
		close(ix.closed)
		ix.consumer.Stop()
		ix.wg.Wait()
		ix.dropWatch(ix.watcher)
	})
	return nil
}

// dropWatchTimeout bounds the deletion of the watch's consumer at Close.
const dropWatchTimeout = 2 * time.Second

// dropWatch deletes the server's consumer behind a watch that stopped. The
// client library stops an ordered consumer without deleting it, and the
// server keeps it until its inactive threshold (5 minutes) passes: every
// replica that stopped would leave one listed on the index bucket's stream
// until then. A failure is only logged; the threshold still removes it.
func (ix *Index) dropWatch(oc jetstream.Consumer) {
	if oc == nil || !ix.js.Conn().IsConnected() {
		return
	}
	info := oc.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dropWatchTimeout)
	defer cancel()
	if err := ix.js.DeleteConsumer(ctx, info.Stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		ix.log.Debug("index: deleting the watch's consumer", "consumer", info.Name, "err", err)
	}
}

// LockTTL returns the TTL of the lock bucket in use, which is the bucket's
// own when it already existed with another.
func (ix *Index) LockTTL() time.Duration { return ix.lockTTL }

// Atomic reports whether Commit writes the head and block entries in one
// atomic batch.
func (ix *Index) Atomic() bool { return ix.atomic }

// openIndexBucket binds or creates the index bucket and finds what its
// stream supports.
func (ix *Index) openIndexBucket(ctx context.Context, o Options) error {
	kv, err := bindOrCreate(ctx, ix.js, jetstream.KeyValueConfig{
		Bucket:         o.Bucket,
		Description:    "nts block index",
		History:        1,
		Storage:        o.Storage,
		Replicas:       o.Replicas,
		MaxBytes:       o.MaxBytes,
		LimitMarkerTTL: o.MarkerTTL,
	})
	if err != nil {
		return fmt.Errorf("index: bucket %q: %w", o.Bucket, err)
	}
	ix.kv = kv
	st, err := ix.js.Stream(ctx, "KV_"+o.Bucket)
	if err != nil {
		return fmt.Errorf("index: bucket %q stream: %w", o.Bucket, err)
	}
	cfg := st.CachedInfo().Config
	if o.AtomicCommit && !cfg.AllowAtomicPublish {
		want := cfg
		want.AllowAtomicPublish = true
		up, err := ix.js.UpdateStream(ctx, want)
		switch {
		case err != nil:
			ix.log.Warn("index: atomic batch publish unavailable; committing in two steps",
				"bucket", o.Bucket, "err", err)
		case !up.CachedInfo().Config.AllowAtomicPublish:
			ix.log.Warn("index: server does not support atomic batch publish; committing in two steps",
				"bucket", o.Bucket)
		default:
			st, cfg = up, up.CachedInfo().Config
		}
	}
	ix.kvStream = st
	ix.atomic = o.AtomicCommit && cfg.AllowAtomicPublish
	if cfg.AllowMsgTTL {
		ix.markerTTL = o.MarkerTTL
	}
	return nil
}

// openLockBucket binds or creates the lock bucket; its MaxAge is the lock
// TTL.
func (ix *Index) openLockBucket(ctx context.Context, o Options) error {
	kv, err := bindOrCreate(ctx, ix.js, jetstream.KeyValueConfig{
		Bucket:      o.LockBucket,
		Description: "nts stream leader locks",
		History:     1,
		TTL:         o.LockTTL,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
		MaxBytes:    o.MaxBytes,
	})
	if err != nil {
		return fmt.Errorf("index: lock bucket %q: %w", o.LockBucket, err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("index: lock bucket %q: %w", o.LockBucket, err)
	}
	ttl := status.TTL()
	switch {
	case ttl <= 0:
		return fmt.Errorf("%w: lock bucket %q has no TTL, so a dead leader's lock would never expire",
			ErrInvalid, o.LockBucket)
	case ttl != o.LockTTL:
		ix.log.Warn("index: lock bucket exists with another TTL; using the bucket's",
			"bucket", o.LockBucket, "ttl", ttl, "wanted", o.LockTTL)
	}
	ix.locks = kv
	ix.lockTTL = ttl
	return nil
}

// bindOrCreate binds the bucket of cfg, creating it when it does not exist.
// Replicas opening at once may race to create it; the loser binds.
func bindOrCreate(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		cfg.LimitMarkerTTL = 0
		kv, err = js.CreateKeyValue(ctx, cfg)
	}
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, cfg.Bucket)
	}
	return kv, err
}
