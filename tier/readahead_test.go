package tier_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/tier"
)

// span is one range read of a tier.
type span struct{ off, n int64 }

// recTier records the ranges read from the Tier it wraps (GetRange, and
// GetRangeInto when into is set), counts the reads in flight, and can fail
// or block reads from the failAt-th on. Safe for concurrent use.
type recTier struct {
	tier.Tier
	into tier.RangeInto // nil: the tier has no GetRangeInto

	mu       sync.Mutex
	reads    []span
	failAt   int  // 1-based read that starts failing (0: none)
	block    bool // a failing read blocks until its ctx is done, instead of missing
	inFlight atomic.Int64
}

// rangeIntoTier is a recTier that has GetRangeInto.
type rangeIntoTier struct{ *recTier }

func (t rangeIntoTier) GetRangeInto(ctx context.Context, key string, off int64, dst []byte) error {
	if err := t.record(ctx, off, int64(len(dst))); err != nil {
		return err
	}
	defer t.inFlight.Add(-1)
	return t.into.GetRangeInto(ctx, key, off, dst)
}

func (t *recTier) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := t.record(ctx, off, n); err != nil {
		return nil, err
	}
	defer t.inFlight.Add(-1)
	return t.Tier.GetRange(ctx, key, off, n)
}

// record notes a read and fails it when due; on success the caller must
// count it out of inFlight.
func (t *recTier) record(ctx context.Context, off, n int64) error {
	t.inFlight.Add(1)
	t.mu.Lock()
	t.reads = append(t.reads, span{off, n})
	fail := t.failAt > 0 && len(t.reads) >= t.failAt
	t.mu.Unlock()
	if !fail {
		return nil
	}
	defer t.inFlight.Add(-1)
	if t.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return fmt.Errorf("injected: %w", tier.ErrNotFound)
}

func (t *recTier) spans() []span {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]span(nil), t.reads...)
}

// set replaces the recorded reads and the failure settings.
func (t *recTier) set(failAt int, block bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reads, t.failAt, t.block = nil, failAt, block
}

// randomBlock seals n messages of 1 KiB of random bytes from seq first in
// frames of 16 KiB: a block of about n KiB whatever the codec.
func randomBlock(t testing.TB, first uint64, n int) (string, []byte, block.Meta, []block.Msg) {
	t.Helper()
	b, err := block.NewBuilder(block.Options{Stream: "RA", FrameSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(first, uint64(n)))
	msgs := make([]block.Msg, n)
	for i := range msgs {
		data := make([]byte, 1024)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		msgs[i] = block.Msg{Seq: first + uint64(i), Subject: "ra.data", Data: data, Time: int64(i + 1)}
		if err := b.Add(msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	key, err := tier.Key("RA", meta.FirstSeq, meta.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	return key, blk, meta, msgs
}

// readAheadEnv is a controller over a recorded tier (the file store, as a
// RangeInto or not) above a plain memory store holding the same block.
type readAheadEnv struct {
	c     *tier.Controller
	rec   *recTier
	key   string
	blk   []byte
	meta  block.Meta
	msgs  []block.Msg
	first string // the recorded tier's name
}

func newReadAheadEnv(t *testing.T, into bool) *readAheadEnv {
	t.Helper()
	ctx := context.Background()
	f := newFile(t, t.TempDir())
	rec := &recTier{Tier: f}
	var top tier.Tier = rec
	if into {
		rec.into = f
		top = rangeIntoTier{rec}
	}
	c, err := tier.NewController([]tier.Level{{Tier: top}, {Tier: tier.NewMemory(0, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	e := &readAheadEnv{c: c, rec: rec, first: "file"}
	e.key, e.blk, e.meta, e.msgs = randomBlock(t, 1000, 2000)
	if _, err := c.Put(ctx, e.key, e.blk); err != nil {
		t.Fatal(err)
	}
	// Open the block (footer read) so that only frame reads are recorded.
	if _, _, err := c.ReadMsg(ctx, e.key, int64(len(e.blk)), e.meta.FirstSeq); err != nil {
		t.Fatal(err)
	}
	return e
}

// scan reads seqs from..to and returns the messages and their tiers.
func (e *readAheadEnv) scan(ctx context.Context, from, to uint64, stopAfter int) ([]block.Msg, []string, error) {
	var got []block.Msg
	var tiers []string
	errStop := errors.New("stop")
	err := e.c.ReadRange(ctx, e.key, int64(len(e.blk)), from, to, func(m block.Msg, from string) error {
		got = append(got, m)
		tiers = append(tiers, from)
		if len(got) == stopAfter {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return got, tiers, err
}

func TestReadRangeReadsAhead(t *testing.T) {
	for _, into := range []bool{false, true} {
		t.Run(fmt.Sprintf("into=%v", into), func(t *testing.T) {
			e := newReadAheadEnv(t, into)
			frame := int64(len(e.blk)) / int64(e.meta.Frames)
			last := e.meta.LastSeq
			for _, tc := range []struct {
				name     string
				from, to uint64
				maxReads int // at most this many frame reads
			}{
				{"whole block", 0, 0, e.meta.Frames / 8},
				{"tail of the block", last - 1500, 0, e.meta.Frames / 8},
				{"one message", 1500, 1500, 1},
				{"within one frame", 1000, 1003, 1},
				{"two frames", 1010, 1025, 3},
			} {
				t.Run(tc.name, func(t *testing.T) {
					e.rec.set(0, false)
					got, tiers, err := e.scan(context.Background(), tc.from, tc.to, 0)
					if err != nil {
						t.Fatal(err)
					}
					lo, hi := max(tc.from, e.meta.FirstSeq), tc.to
					if hi == 0 {
						hi = last
					}
					if len(got) != int(hi-lo+1) {
						t.Fatalf("%d messages, want %d", len(got), hi-lo+1)
					}
					// Messages kept from every frame are intact after the
					// buffers they were decoded from went back.
					for i, m := range got {
						if want := e.msgs[lo-e.meta.FirstSeq+uint64(i)]; !sameMsg(m, want) || tiers[i] != e.first {
							t.Fatalf("message %d: seq %d from %s, want seq %d from %s", i, m.Seq, tiers[i], want.Seq, e.first)
						}
					}
					spans := e.rec.spans()
					var bytes int64
					for i, s := range spans {
						bytes += s.n
						if i > 0 && s.off < spans[i-1].off+spans[i-1].n {
							t.Fatalf("read %d at %d overlaps the one before %+v", i, s.off, spans[i-1])
						}
					}
					if len(spans) == 0 || len(spans) > tc.maxReads || bytes > int64(len(e.blk)) {
						t.Fatalf("%d reads of %d bytes in all (frames of ~%d bytes): %+v; want 1 to %d",
							len(spans), bytes, frame, spans, tc.maxReads)
					}
				})
			}
		})
	}
}

func TestReadRangeAheadFailures(t *testing.T) {
	for _, into := range []bool{false, true} {
		t.Run(fmt.Sprintf("into=%v", into), func(t *testing.T) {
			e := newReadAheadEnv(t, into)
			t.Run("a read failing part way falls through once", func(t *testing.T) {
				e.rec.set(3, false)
				got, tiers, err := e.scan(context.Background(), 0, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(e.msgs) {
					t.Fatalf("%d messages, want %d", len(got), len(e.msgs))
				}
				switched := 0
				for i, m := range got {
					if !sameMsg(m, e.msgs[i]) {
						t.Fatalf("message %d is seq %d, want %d", i, m.Seq, e.msgs[i].Seq)
					}
					if i > 0 && tiers[i] != tiers[i-1] {
						switched++
					}
				}
				if tiers[0] != e.first || tiers[len(tiers)-1] != "memory" || switched != 1 {
					t.Fatalf("served by %s first, %s last, %d switches; want file, then memory", tiers[0], tiers[len(tiers)-1], switched)
				}
			})
			t.Run("stopping waits for the read ahead", func(t *testing.T) {
				// Reads after the first block until cancelled: the
				// caller stops within the first chunk, and nothing may
				// still be reading once ReadRange returns.
				e.rec.set(2, true)
				got, _, err := e.scan(context.Background(), 0, 0, 10)
				if err != nil || len(got) != 10 {
					t.Fatalf("%d messages, %v", len(got), err)
				}
				if n := e.rec.inFlight.Load(); n != 0 {
					t.Fatalf("%d reads still in flight after ReadRange returned", n)
				}
				if len(e.rec.spans()) != 2 {
					t.Fatalf("reads %+v, want the first chunk and the one ahead", e.rec.spans())
				}
			})
			t.Run("a cancelled range stops", func(t *testing.T) {
				e.rec.set(0, false)
				ctx, cancel := context.WithCancel(context.Background())
				n := 0
				err := e.c.ReadRange(ctx, e.key, int64(len(e.blk)), 0, 0, func(block.Msg, string) error {
					if n++; n == 5 {
						cancel()
					}
					return nil
				})
				if !errors.Is(err, context.Canceled) || n >= len(e.msgs) {
					t.Fatalf("after %d messages: %v, want context.Canceled", n, err)
				}
				if got := e.rec.inFlight.Load(); got != 0 {
					t.Fatalf("%d reads still in flight after ReadRange returned", got)
				}
			})
		})
	}
}

// TestReadsShareNoBuffers reads the same block from many goroutines at once,
// ranges and single messages, through pooled buffers: every message must
// be the one stored, whatever the others read.
func TestReadsShareNoBuffers(t *testing.T) {
	e := newReadAheadEnv(t, true)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var kept []block.Msg
			for range 20 {
				from := e.meta.FirstSeq + uint64(rng.IntN(len(e.msgs)))
				if g%2 == 0 {
					got, _, err := e.scan(ctx, from, min(from+uint64(rng.IntN(400)), e.meta.LastSeq), 0)
					if err != nil {
						errs <- err
						return
					}
					kept = append(kept, got...)
					continue
				}
				m, _, err := e.c.ReadMsg(ctx, e.key, int64(len(e.blk)), from)
				if err != nil {
					errs <- err
					return
				}
				kept = append(kept, m)
			}
			for _, m := range kept {
				if !sameMsg(m, e.msgs[m.Seq-e.meta.FirstSeq]) {
					errs <- fmt.Errorf("goroutine %d: seq %d differs from the message stored", g, m.Seq)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
