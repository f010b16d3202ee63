package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The view follows the bucket with an ordered consumer on the bucket's stream
// rather than a KeyValue watch: nats.go's KV watch (a legacy push consumer)
// notices a lost consumer only by missing heartbeats, which leaves the view
// behind for 10 to 20 seconds after a server restart, while the ordered pull
// consumer starts over from the last sequence it saw as soon as the
// connection is back.

// startWatch consumes the block and head entries (the newest message of each
// key, then every new one), applies what is there at the start to the view
// before it returns, and leaves the consumer applying what follows.
func (ix *Index) startWatch(ctx context.Context) error {
	oc, err := ix.js.OrderedConsumer(ctx, ix.kvStream.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{ix.subjPre + blkPrefix + ">", ix.subjPre + headPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("index: watch: %w", err)
	}
	loaded := make(chan struct{})
	var once sync.Once
	markLoaded := func() {
		once.Do(func() {
			ix.view.finishLoad()
			close(loaded)
		})
	}
	consumeOpts := []jetstream.PullConsumeOpt{jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		ix.log.Debug("index: watch", "err", err)
	})}
	limit, err := ix.pullLimit(ctx)
	if err != nil {
		// Most servers set no limit: go on as if there were none.
		ix.log.Warn("index: cannot learn the server's pull limits; assuming none", "err", err)
	}
	if limit > 0 && limit < jetstream.DefaultMaxMessages {
		consumeOpts = append(consumeOpts, jetstream.PullMaxMessages(limit))
	}
	// The view is loaded once as many messages arrived as the consumer had
	// pending when it was made, or one arrives with nothing left after it,
	// whichever comes first (a busy bucket may never show the second).
	var delivered, initial atomic.Uint64
	ix.view.startLoad()
	cc, err := oc.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			ix.log.Warn("index: skipping a message without metadata", "subject", m.Subject(), "err", err)
			return
		}
		ix.apply(m, md.Sequence.Stream)
		n := delivered.Add(1)
		if p := initial.Load(); md.NumPending == 0 || p > 0 && n >= p {
			markLoaded()
		}
	}, consumeOpts...)
	if err != nil {
		return fmt.Errorf("index: watch: %w", err)
	}
	info := oc.CachedInfo()
	if info == nil {
		if info, err = oc.Info(ctx); err != nil {
			cc.Stop()
			<-cc.Closed()
			ix.dropWatch(oc)
			return fmt.Errorf("index: watch: %w", err)
		}
	}
	initial.Store(info.NumPending)
	if info.NumPending == 0 || delivered.Load() >= info.NumPending {
		markLoaded()
	}
	select {
	case <-loaded:
	case <-ctx.Done():
		cc.Stop()
		<-cc.Closed()
		ix.dropWatch(oc)
		return fmt.Errorf("index: loading the view: %w", ctx.Err())
	}
	ix.consumer, ix.watcher = cc, oc
	ix.wg.Go(func() {
		<-cc.Closed()
		ix.view.stop()
		select {
		case <-ix.closed:
		default:
			ix.log.Warn("index: watch ended; the view no longer follows the bucket")
		}
	})
	return nil
}

// pullLimit returns the most messages one pull request of a consumer on the
// bucket's stream may ask for, 0 for no limit: the server's jetstream limits
// may set one (max_request_batch), which every pull consumer inherits, and
// the server refuses a request for more, again and again. It makes a
// consumer that matches no key, reads its configuration and deletes it.
func (ix *Index) pullLimit(ctx context.Context) (int, error) {
	stream := ix.kvStream.CachedInfo().Config.Name
	c, err := ix.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		FilterSubject:     ix.subjPre + "_probe",
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: 10 * time.Second, // should the delete below fail
	})
	if err != nil {
		return 0, fmt.Errorf("probe the pull limits: %w", err)
	}
	info := c.CachedInfo()
	if err := ix.js.DeleteConsumer(ctx, stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		ix.log.Debug("index: probe consumer not deleted; it expires", "err", err)
	}
	return info.Config.MaxRequestBatch, nil
}

// apply applies one message of the bucket, at revision rev, to the view.
// Entries that do not decode to what their key says are logged and leave the
// view without an entry for their key: they never reach a reader.
func (ix *Index) apply(m jetstream.Msg, rev uint64) {
	key, ok := strings.CutPrefix(m.Subject(), ix.subjPre)
	if !ok {
		return
	}
	deleted := isMarker(m.Headers())
	var err error
	switch {
	case strings.HasPrefix(key, blkPrefix):
		err = ix.applyBlock(key, m.Data(), deleted)
	case strings.HasPrefix(key, headPrefix):
		err = ix.applyHead(key, m.Data(), rev, deleted)
	}
	if err != nil {
		ix.log.Warn("index: skipping entry", "key", key, "revision", rev, "err", err)
	}
}

func (ix *Index) applyBlock(key string, value []byte, deleted bool) error {
	stream, first, err := parseBlockKey(key)
	if err != nil {
		return err
	}
	if deleted {
		ix.view.deleteBlock(stream, first)
		return nil
	}
	m, err := decodeBlock(stream, first, value)
	if err != nil {
		// The key no longer holds a block the view could serve.
		ix.view.deleteBlock(stream, first)
		return err
	}
	ix.view.putBlock(m)
	return nil
}

func (ix *Index) applyHead(key string, value []byte, rev uint64, deleted bool) error {
	stream, err := parseHeadKey(key)
	if err != nil {
		return err
	}
	if deleted {
		ix.view.deleteHead(stream)
		return nil
	}
	h, err := decodeHead(stream, value)
	if err != nil {
		ix.view.deleteHead(stream)
		return err
	}
	ix.view.putHead(h, rev)
	return nil
}
