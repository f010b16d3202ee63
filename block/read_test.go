package block_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/block/blocktest"
)

// countingReader wraps a ReadRangeFunc over b and counts calls and bytes.
type countingReader struct {
	b            []byte
	calls, bytes atomic.Int64
}

func (c *countingReader) read(ctx context.Context, off, n int64) ([]byte, error) {
	c.calls.Add(1)
	c.bytes.Add(n)
	return BytesRange(c.b)(ctx, off, n)
}

func (c *countingReader) take() (calls, bytes int64) {
	return c.calls.Swap(0), c.bytes.Swap(0)
}

// logBlock seals JSON log messages until the builder is full.
func logBlock(t testing.TB, codec Codec, target int64) ([]byte, Meta, []Msg) {
	t.Helper()
	msgs := blocktest.JSONLogs(7, int(target/250))
	b, err := NewBuilder(Options{Stream: "LOGS", Codec: codec, TargetSize: target})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for !b.Full() {
		if err := b.Add(msgs[n]); err != nil {
			t.Fatal(err)
		}
		n++
	}
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	return blk, meta, msgs[:n]
}

// TestGetReadsOneFrame checks that reading one message from an 8 MiB block
// reads the tail once on Open (or the footer and trailer, if larger), then
// exactly one frame per Get and nothing else.
func TestGetReadsOneFrame(t *testing.T) {
	blk, meta, msgs := logBlock(t, CodecS2, DefaultTargetSize)
	cr := &countingReader{b: blk}
	ctx := context.Background()
	r, err := Open(ctx, meta.Size, cr.read)
	if err != nil {
		t.Fatal(err)
	}
	calls, n := cr.take()
	tail := max(int64(TailSize), r.FooterSize())
	t.Logf("8 MiB block: %d messages, %d frames, stored %d, footer+trailer %d; Open read %d bytes in %d calls",
		meta.Count, meta.Frames, meta.Size, r.FooterSize(), n, calls)
	if n != tail || calls > 2 || (calls == 2) != (r.FooterSize() > TailSize) {
		t.Fatalf("Open read %d bytes in %d calls; want %d bytes in one call (two if the footer is larger than %d)", n, calls, tail, TailSize)
	}
	// The index takes about 4.3 bytes a message (record length and
	// nanosecond time deltas); the frame table about 15 bytes a frame.
	if limit := 5*int64(meta.Count) + 20*int64(meta.Frames) + 300; r.FooterSize() > limit {
		t.Fatalf("footer+trailer of %d bytes for %d messages in %d frames, want at most %d", r.FooterSize(), meta.Count, meta.Frames, limit)
	}
	maxFrame := r.MaxFrameStored()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		want := msgs[rng.IntN(len(msgs))]
		got, err := r.Get(ctx, want.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if d := SameMsg(got, want); d != "" {
			t.Fatal(d)
		}
		calls, n := cr.take()
		_, stored := r.FrameOf(want.Seq)
		if calls != 1 || n != stored {
			t.Fatalf("Get(%d) read %d bytes in %d calls; want its frame's %d bytes in one", want.Seq, n, calls, stored)
		}
	}
	// A cold read: Open then Get reads the tail (or footer and trailer) and one frame.
	r2, err := Open(ctx, meta.Size, cr.read)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Get(ctx, msgs[len(msgs)/2].Seq); err != nil {
		t.Fatal(err)
	}
	if _, n := cr.take(); n > tail+maxFrame {
		t.Fatalf("Open+Get read %d bytes, want at most %d (tail) + %d (frame)", n, tail, maxFrame)
	}
}

// TestLargeFooter checks Open reads a footer larger than its first tail read
// with one more read of the missing part only.
func TestLargeFooter(t *testing.T) {
	b, err := NewBuilder(Options{Stream: "TINY", Codec: CodecS2, FrameSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]Msg, 0, 100_000)
	for i := range 100_000 {
		// Every third seq missing, irregular times: a large index.
		m := Msg{Seq: uint64(1 + i + i/2), Subject: "t", Data: []byte{byte(i)}, Time: int64(i)*1_000_003 + int64(i%7)*77_777}
		msgs = append(msgs, m)
		if err := b.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{b: blk}
	r, err := Open(context.Background(), meta.Size, cr.read)
	if err != nil {
		t.Fatal(err)
	}
	calls, n := cr.take()
	if r.FooterSize() <= TailSize || calls != 2 || n != r.FooterSize() {
		t.Fatalf("footer+trailer %d bytes: Open read %d bytes in %d calls; want it in 2", r.FooterSize(), n, calls)
	}
	if got := r.Meta(); got.Filter != nil || meta.Filter != nil || !reflect.DeepEqual(got, meta) {
		t.Fatalf("meta %+v, want %+v", r.Meta(), meta)
	}
	for _, i := range []int{0, 1, 2, 50_000, 99_999} {
		got, err := r.Get(context.Background(), msgs[i].Seq)
		if err != nil {
			t.Fatal(err)
		}
		if d := SameMsg(got, msgs[i]); d != "" {
			t.Fatal(d)
		}
	}
}

// TestConcurrentReads runs Gets and Ranges on one Reader from several
// goroutines (run with -race).
func TestConcurrentReads(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecS2, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			blk, meta, msgs := logBlock(t, codec, 1<<20)
			r, err := Open(context.Background(), meta.Size, BytesRange(blk))
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan string, 8)
			for g := range 4 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					for range 100 {
						want := msgs[rng.IntN(len(msgs))]
						got, err := r.Get(context.Background(), want.Seq)
						if err != nil {
							errs <- err.Error()
							return
						}
						if d := SameMsg(got, want); d != "" {
							errs <- d
							return
						}
					}
					i := 0
					if err := r.Range(context.Background(), 0, 0, func(m Msg) error {
						if d := SameMsg(m, msgs[i]); d != "" {
							errs <- d
						}
						i++
						return nil
					}); err != nil || i != len(msgs) {
						errs <- "range failed"
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatal(e)
			}
		})
	}
}
