package index

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
)

// testLockTTL keeps the lock tests short, yet leaves a renewal a third of it
// (667ms) to land on a loaded machine.
const testLockTTL = 2 * time.Second

// contender runs Campaign in a goroutine until stop.
type contender struct {
	id       string
	cancel   context.CancelFunc
	done     chan error
	terms    chan context.Context // the leader context of each term, as it starts
	stopOnce sync.Once
}

// campaign starts Campaign for id on stream, with lead called for every term
// after the term's context is sent on terms. It is stopped when the test
// ends, if not before.
func campaign(t testing.TB, ix *Index, stream, id string, lead func(ctx context.Context) error) *contender {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &contender{id: id, cancel: cancel, done: make(chan error, 1), terms: make(chan context.Context, 16)}
	go func() {
		c.done <- ix.Campaign(ctx, stream, id, func(lctx context.Context) error {
			c.terms <- lctx
			return lead(lctx)
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop cancels the campaign and waits for it to return. It is idempotent.
func (c *contender) stop(t testing.TB) {
	t.Helper()
	c.stopOnce.Do(func() {
		c.cancel()
		select {
		case err := <-c.done:
			if err != nil {
				t.Errorf("Campaign %s returned %v; want nil once its context is done", c.id, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Campaign %s did not return after its context ended", c.id)
		}
	})
}

// untilDone is a lead that leads until its context ends.
func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// waitTerm waits up to d for c's next term to start.
func waitTerm(t testing.TB, c *contender, d time.Duration) context.Context {
	t.Helper()
	select {
	case ctx := <-c.terms:
		return ctx
	case <-time.After(d):
		t.Fatalf("%s did not start leading within %v", c.id, d)
		return nil
	}
}

// waitEnd waits up to d for a term's context to end.
func waitEnd(t testing.TB, ctx context.Context, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(d):
		t.Fatalf("%s: leader context not cancelled within %v", what, d)
	}
}

func TestLockExpiryLetsCreateSucceed(t *testing.T) {
	const testLockTTL = time.Second
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{LockTTL: testLockTTL}).ix
	ctx := testCtx(t, 10*time.Second)
	if _, err := ix.locks.Create(ctx, "lock.S", []byte("a")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	created := time.Now()
	if _, err := ix.locks.Create(ctx, "lock.S", []byte("b")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("Create of a held lock: %v; want ErrKeyExists", err)
	}
	var took time.Duration
	checkFor(t, 3*testLockTTL, 10*time.Millisecond, func() error {
		if _, err := ix.locks.Create(ctx, "lock.S", []byte("b")); err != nil {
			return err
		}
		took = time.Since(created)
		return nil
	})
	t.Logf("Create succeeded %v after the lock was taken (TTL %v)", took, testLockTTL)
	if took < testLockTTL-50*time.Millisecond || took > 2*testLockTTL {
		t.Errorf("an expired lock was free %v after it was taken; want about %v", took, testLockTTL)
	}

	// A released lock (delete marker) is free at once.
	e, err := ix.locks.Get(ctx, "lock.S")
	if err != nil || string(e.Value()) != "b" {
		t.Fatalf("Get = %v, %v", e, err)
	}
	if err := ix.locks.Delete(ctx, "lock.S", jetstream.LastRevision(e.Revision())); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := ix.locks.Create(ctx, "lock.S", []byte("c")); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
}

func TestCampaignOneLeaderAtATime(t *testing.T) {
	s := testenv.RunNATS(t)
	var leading, maxLeading, terms atomic.Int32
	lead := func(ctx context.Context) error {
		n := leading.Add(1)
		defer leading.Add(-1)
		terms.Add(1)
		for {
			if m := maxLeading.Load(); n <= m || maxLeading.CompareAndSwap(m, n) {
				break
			}
		}
		// Lead a short term, then give the lock up.
		select {
		case <-ctx.Done():
		case <-time.After(150 * time.Millisecond):
		}
		return nil
	}
	var cs []*contender
	for _, id := range []string{"a", "b", "c"} {
		ix := openReplica(t, s, Options{LockTTL: testLockTTL}).ix
		cs = append(cs, campaign(t, ix, "S", id, lead))
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := terms.Load(); n < 6 {
			return fmt.Errorf("%d terms so far", n)
		}
		return nil
	})
	for _, c := range cs {
		c.stop(t)
	}
	if m := maxLeading.Load(); m != 1 {
		t.Fatalf("%d contenders led at once", m)
	}
}

func TestCampaignHandover(t *testing.T) {
	s := testenv.RunNATS(t)
	a := openReplica(t, s, Options{LockTTL: testLockTTL}).ix
	b := openReplica(t, s, Options{LockTTL: testLockTTL}).ix
	ca := campaign(t, a, "S", "a", untilDone)
	first := waitTerm(t, ca, 2*testLockTTL)
	if id, ok, err := a.Leader(testCtx(t, time.Second), "S"); err != nil || !ok || id != "a" {
		t.Fatalf("Leader = %q, %v, %v; want a", id, ok, err)
	}
	cb := campaign(t, b, "S", "b", untilDone)
	select {
	case <-cb.terms:
		t.Fatalf("b leads while a holds the lock")
	case <-time.After(2 * testLockTTL):
	}
	if first.Err() != nil {
		t.Fatalf("a's term ended while it renewed: %v", context.Cause(first))
	}

	// a stops: it releases the lock and b takes over well within 2 TTLs.
	stopped := time.Now()
	ca.stop(t)
	if !errors.Is(context.Cause(first), context.Canceled) {
		t.Errorf("a's term ended with %v; want context.Canceled", context.Cause(first))
	}
	waitTerm(t, cb, 2*testLockTTL)
	t.Logf("b led %v after a stopped (TTL %v)", time.Since(stopped), testLockTTL)
	if id, _, _ := b.Leader(testCtx(t, time.Second), "S"); id != "b" {
		t.Fatalf("Leader = %q; want b", id)
	}
}

func TestCampaignFrozenLeader(t *testing.T) {
	s := testenv.RunNATS(t)
	ra := openReplica(t, s, Options{LockTTL: testLockTTL})
	b := openReplica(t, s, Options{LockTTL: testLockTTL}).ix
	// a's lead ignores its context, like a stuck ingest.
	release := make(chan struct{})
	var once sync.Once
	unfreeze := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unfreeze)
	ca := campaign(t, ra.ix, "S", "a", func(context.Context) error {
		<-release
		return nil
	})
	term := waitTerm(t, ca, 2*testLockTTL)
	cb := campaign(t, b, "S", "b", untilDone)

	// a is cut off: its renewals fail, and nothing deletes its lock.
	cut := time.Now()
	ra.nc.Close()
	waitEnd(t, term, testLockTTL, "a cut off")
	if !errors.Is(context.Cause(term), ErrLeadershipLost) {
		t.Errorf("a's term ended with %v; want ErrLeadershipLost", context.Cause(term))
	}
	t.Logf("a's term ended %v after it was cut off", time.Since(cut))
	waitTerm(t, cb, 2*testLockTTL)
	t.Logf("b led %v after a was cut off (TTL %v)", time.Since(cut), testLockTTL)
	unfreeze()
}

func TestCampaignRenewalFailureCancelsAtOnce(t *testing.T) {
	const ttl = 3 * time.Second // the intruder's lock must outlive the checks
	s := testenv.RunNATS(t)
	a := openReplica(t, s, Options{LockTTL: ttl}).ix
	other := openReplica(t, s, Options{LockTTL: ttl}).ix
	ca := campaign(t, a, "S", "a", untilDone)
	term := waitTerm(t, ca, 2*ttl)

	// Another instance takes the key over (as after an expiry a frozen
	// leader did not notice): a's next renewal fails.
	ctx := testCtx(t, 10*time.Second)
	if _, err := other.locks.Put(ctx, lockKey("S"), []byte("intruder")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	taken := time.Now()
	waitEnd(t, term, ttl/3+500*time.Millisecond, "lock taken over")
	t.Logf("a's term ended %v after its lock was taken over (renewals every %v)", time.Since(taken), ttl/3)
	if !errors.Is(context.Cause(term), ErrLeadershipLost) {
		t.Errorf("a's term ended with %v; want ErrLeadershipLost", context.Cause(term))
	}
	// a neither deletes the intruder's lock on its way out nor takes it
	// back while it lives.
	if id, ok, err := a.Leader(ctx, "S"); err != nil || !ok || id != "intruder" {
		t.Fatalf("Leader = %q, %v, %v; want intruder", id, ok, err)
	}
	select {
	case <-ca.terms:
		t.Fatalf("a leads again while the intruder holds the lock")
	case <-time.After(time.Until(taken.Add(ttl * 2 / 3))):
	}
	if id, _, _ := a.Leader(ctx, "S"); id != "intruder" {
		t.Fatalf("Leader = %q; want intruder", id)
	}
}

func TestCampaignTakesBackOwnLock(t *testing.T) {
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{LockTTL: 10 * time.Second}).ix
	ctx := testCtx(t, 5*time.Second)
	// An earlier run of instance "a" died holding the lock.
	if _, err := ix.locks.Create(ctx, lockKey("S"), []byte("a")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	start := time.Now()
	ca := campaign(t, ix, "S", "a", untilDone)
	waitTerm(t, ca, 2*time.Second) // far less than the 10s TTL
	t.Logf("took its own lock back in %v", time.Since(start))
	cb := campaign(t, ix, "S", "b", untilDone)
	ca.stop(t)
	waitTerm(t, cb, 10*time.Second)
	if time.Since(start) > 8*time.Second {
		t.Errorf("b waited for the lock to expire instead of taking the released lock")
	}
}

func TestCampaignInvalid(t *testing.T) {
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{}).ix
	ctx := testCtx(t, 5*time.Second)
	tests := []struct {
		name, stream, id string
		lead             func(context.Context) error
	}{
		{"bad stream", "a.b", "x", untilDone},
		{"empty id", "S", "", untilDone},
		{"nil lead", "S", "x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ix.Campaign(ctx, tt.stream, tt.id, tt.lead); !errors.Is(err, ErrInvalid) {
				t.Errorf("Campaign = %v; want ErrInvalid", err)
			}
		})
	}
	if _, _, err := ix.Leader(ctx, "a*"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Leader(a*) = %v; want ErrInvalid", err)
	}
	if id, ok, err := ix.Leader(ctx, "nobody"); err != nil || ok || id != "" {
		t.Errorf("Leader of an unlocked stream = %q, %v, %v", id, ok, err)
	}
}

func TestLockBucketKeepsItsTTL(t *testing.T) {
	s := testenv.RunNATS(t)
	first := openReplica(t, s, Options{LockTTL: 3 * time.Second}).ix
	second := openReplica(t, s, Options{LockTTL: time.Second}).ix
	if first.LockTTL() != 3*time.Second || second.LockTTL() != 3*time.Second {
		t.Fatalf("LockTTL = %v, %v; want the bucket's 3s", first.LockTTL(), second.LockTTL())
	}
}
