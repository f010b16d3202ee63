package index

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errHeld reports a lock held by another instance.
var errHeld = errors.New("index: lock held by another instance")

// Campaign runs lead for stream whenever instanceID holds the stream's lock,
// until ctx is done; then it returns nil. It returns an error only for
// invalid arguments.
//
// It tries to take the lock (Create of "lock.<stream>"), and while another
// instance holds it, tries again every third of the lock TTL, with jitter.
// Holding it, it renews it every third of the TTL (an Update conditional on
// the last revision, which resets the key's age) and runs lead with a context
// that is cancelled, with cause ErrLeadershipLost, the moment a renewal fails
// (the lock was taken, deleted or expired, or the renewal did not succeed
// within two thirds of the TTL after the last good one was sent), and when
// ctx is done. lead must stop writing for the stream when its context ends.
// When lead returns, Campaign releases the lock (a Delete conditional on the
// last revision) so another instance can take over at once, and campaigns
// again after a pause.
//
// A lock found holding instanceID itself (left by an earlier run of the same
// instance) is taken back at once, so instance ids must be unique among the
// running replicas.
func (ix *Index) Campaign(ctx context.Context, stream, instanceID string, lead func(ctx context.Context) error) error {
	if err := validateStream(stream); err != nil {
		return err
	}
	if instanceID == "" || lead == nil {
		return fmt.Errorf("%w: campaign needs an instance id and a lead function", ErrInvalid)
	}
	key := lockKey(stream)
	for {
		sent := time.Now()
		rev, err := ix.acquire(ctx, key, instanceID)
		switch {
		case err == nil:
			if err := ix.hold(ctx, key, instanceID, rev, sent, lead); err != nil && ctx.Err() == nil {
				ix.log.Warn("index: leading ended with an error", "stream", stream, "instance", instanceID, "err", err)
			}
		case errors.Is(err, errHeld) || ctx.Err() != nil:
		default:
			ix.log.Warn("index: taking the lock failed", "stream", stream, "instance", instanceID, "err", err)
		}
		if !sleep(ctx, ix.retryInterval()) {
			return nil
		}
	}
}

// Leader returns the instance id holding the lock of stream, and false when
// no one holds it.
func (ix *Index) Leader(ctx context.Context, stream string) (string, bool, error) {
	if err := validateStream(stream); err != nil {
		return "", false, err
	}
	e, err := ix.locks.Get(ctx, lockKey(stream))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("index: leader of %q: %w", stream, err)
	}
	return string(e.Value()), true, nil
}

// retryInterval is a third of the lock TTL, give or take a fifth of that.
func (ix *Index) retryInterval() time.Duration {
	d := ix.lockTTL / 3
	return d - d/5 + rand.N(2*d/5+1)
}

// acquire takes the lock key for id and returns its revision. It returns
// errHeld while another instance holds it.
func (ix *Index) acquire(ctx context.Context, key, id string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, ix.lockTTL/3)
	defer cancel()
	rev, err := ix.locks.Create(ctx, key, []byte(id))
	if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, err
	}
	e, err := ix.locks.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, errHeld // expired a moment ago; the next try may win
	case err != nil:
		return 0, err
	case string(e.Value()) != id:
		return 0, errHeld
	}
	rev, err = ix.locks.Update(ctx, key, []byte(id), e.Revision())
	if isWrongLastSeq(err) {
		return 0, errHeld
	}
	return rev, err
}

// hold runs lead while renewing the lock taken at rev (its request sent at
// sent), then releases the lock. It returns lead's error.
func (ix *Index) hold(ctx context.Context, key, id string, rev uint64, sent time.Time, lead func(context.Context) error) error {
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		last uint64
		held bool
	)
	wg.Go(func() { last, held = ix.renew(lctx, cancel, key, id, rev, sent) })
	err := lead(lctx)
	cancel(nil)
	wg.Wait()
	if held {
		ix.release(ctx, key, id, last)
	}
	return err
}

// renew renews the lock every third of the TTL until ctx ends or a renewal
// fails; a failure cancels ctx with ErrLeadershipLost at once. It returns the
// last revision written and whether the lock was still held when it stopped.
func (ix *Index) renew(ctx context.Context, cancel context.CancelCauseFunc, key, id string, rev uint64, sent time.Time) (uint64, bool) {
	interval := ix.lockTTL / 3
	t := time.NewTimer(time.Until(sent.Add(interval)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return rev, true
		case <-t.C:
		}
		start := time.Now()
		// Give up while a third of the TTL is left before the lock would
		// expire, counted from the last renewal that succeeded.
		rctx, rcancel := context.WithDeadline(ctx, sent.Add(2*ix.lockTTL/3))
		next, err := ix.locks.Update(rctx, key, []byte(id), rev)
		rcancel()
		if err != nil {
			if ctx.Err() != nil {
				// Leading ended meanwhile; the renewal may have landed.
				return rev, true
			}
			cancel(fmt.Errorf("%w: renewing %s: %v", ErrLeadershipLost, key, err))
			return rev, false
		}
		rev, sent = next, start
		t.Reset(time.Until(sent.Add(interval)))
	}
}

// release deletes the lock if it still holds id, so that another instance
// can take over without waiting for it to expire. A failure only delays the
// takeover until the lock expires, so it is logged, not returned.
func (ix *Index) release(ctx context.Context, key, id string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ix.lockTTL/3)
	defer cancel()
	err := ix.locks.Delete(ctx, key, jetstream.LastRevision(rev))
	if isWrongLastSeq(err) {
		// A renewal cut short may have landed after all.
		e, gerr := ix.locks.Get(ctx, key)
		if gerr != nil || string(e.Value()) != id {
			return
		}
		err = ix.locks.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	}
	if err != nil {
		ix.log.Warn("index: releasing the lock failed; it expires on its own", "key", key, "err", err)
	}
}

// sleep waits for d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
