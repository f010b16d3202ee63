package tier_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/block/blocktest"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/blob"
)

// openTail is how much of the end of a block block.Open reads in one call.
// A lookup in a block not yet opened reads that tail and one frame; the
// target for it is at most openTail plus the footer.
const openTail = 256 << 10

// benchBlock is one sealed block of JSON logs filling the default target
// size (8 MiB raw), compressed with S2 in frames of the default size, and
// the messages in it (msgs[i] has seq i+1).
type benchBlock struct {
	key  string
	blk  []byte
	meta block.Meta
	msgs []block.Msg
}

// sealBenchBlock builds the benchmark block.
func sealBenchBlock(tb testing.TB) benchBlock {
	tb.Helper()
	bld, err := block.NewBuilder(block.Options{Stream: "LOGS", Codec: block.CodecS2})
	if err != nil {
		tb.Fatal(err)
	}
	msgs := blocktest.JSONLogs(1, 60_000)
	n := 0
	for ; n < len(msgs) && !bld.Full(); n++ {
		if err := bld.Add(msgs[n]); err != nil {
			tb.Fatal(err)
		}
	}
	if !bld.Full() {
		tb.Fatalf("%d messages do not fill a block", len(msgs))
	}
	blk, meta, err := bld.Seal()
	if err != nil {
		tb.Fatal(err)
	}
	key, err := tier.Key(meta.Stream, meta.FirstSeq, meta.LastSeq)
	if err != nil {
		tb.Fatal(err)
	}
	return benchBlock{key: key, blk: blk, meta: meta, msgs: msgs[:n]}
}

// openDirBlob opens a dir:// blob store in a new temporary directory.
func openDirBlob(tb testing.TB) *blob.Blob {
	tb.Helper()
	bl, err := blob.Open(context.Background(), "dir://"+filepath.ToSlash(tb.TempDir()), blob.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return bl
}

// openS3Blob opens a blob store on a new bucket of srv.
func openS3Blob(tb testing.TB, srv testenv.S3Server) *blob.Blob {
	tb.Helper()
	testenv.CreateBucket(tb, srv, "nts-bench")
	bl, err := blob.Open(context.Background(), srv.URL("nts-bench", "blocks"),
		blob.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		tb.Fatal(err)
	}
	return bl
}

// benchStores are the stores BenchmarkReadOneMessage reads from, each
// opened empty for its benchmark; servers and directories go with it.
var benchStores = []struct {
	name string
	open func(tb testing.TB) tier.Tier
}{
	{"memory", func(testing.TB) tier.Tier { return tier.NewMemory(0, 0) }},
	{"file", func(tb testing.TB) tier.Tier { return newFile(tb, tb.TempDir()) }},
	{"blob-dir", func(tb testing.TB) tier.Tier { return openDirBlob(tb) }},
	{"blob-s3mem", func(tb testing.TB) tier.Tier {
		return openS3Blob(tb, testenv.S3Server{
			Endpoint:  testenv.RunS3Mem(tb),
			AccessKey: "nts-bench-access",
			SecretKey: "nts-bench-secret",
		})
	}},
	{"blob-versitygw", func(tb testing.TB) tier.Tier { return openS3Blob(tb, testenv.RunVersity(tb)) }},
}

// BenchmarkReadOneMessage reads one random message of a sealed 8 MiB block
// from each store through block.Open over the store's GetRange: "cold" opens
// the block for every read (trailer and footer, then one frame), "cached"
// opens it once and reads one frame per message, as the controller does
// with its cache of footers. Besides time and allocations it reports the
// bytes and range requests asked of the store per read, the footer's size
// (with the trailer) and the median and 99th-percentile latency. It fails
// if a cached read asks for anything but one range inside the frames, or a
// cold one for more than openTail plus the footer.
func BenchmarkReadOneMessage(b *testing.B) {
	bb := sealBenchBlock(b)
	b.Logf("block: %d messages, %d KiB raw, %d KiB stored, %d frames",
		bb.meta.Count, bb.meta.RawSize>>10, bb.meta.Size>>10, bb.meta.Frames)
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			st := s.open(b)
			if err := st.Put(b.Context(), bb.key, bb.blk); err != nil {
				b.Fatal(err)
			}
			for _, cold := range []bool{true, false} {
				name := "cached"
				if cold {
					name = "cold"
				}
				b.Run(name, func(b *testing.B) { benchReadOne(b, st, bb, cold) })
			}
		})
	}
}

// rangeLog counts the ranges a block reader asks for. It is used by one
// goroutine at a time.
type rangeLog struct {
	calls, bytes int64
	off, n       int64 // the last range
}

// wrap returns a ReadRangeFunc that logs each range and reads it with read.
func (l *rangeLog) wrap(read block.ReadRangeFunc) block.ReadRangeFunc {
	return func(ctx context.Context, off, n int64) ([]byte, error) {
		l.calls++
		l.bytes += n
		l.off, l.n = off, n
		return read(ctx, off, n)
	}
}

func benchReadOne(b *testing.B, st tier.Tier, bb benchBlock, cold bool) {
	ctx := b.Context()
	var log rangeLog
	read := log.wrap(func(ctx context.Context, off, n int64) ([]byte, error) {
		return st.GetRange(ctx, bb.key, off, n)
	})
	r, err := block.Open(ctx, bb.meta.Size, read)
	if err != nil {
		b.Fatal(err)
	}
	footer := r.FooterSize()
	framesEnd := bb.meta.Size - footer // frames lie in [8, framesEnd)
	wantCalls := int64(1)
	if cold {
		wantCalls = 2 // the tail holding trailer and footer, then the frame
		if footer > openTail {
			wantCalls = 3
		}
	}
	budget := openTail + footer
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, b.N)
	var maxBytes int64
	log = rangeLog{}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		seq := bb.meta.FirstSeq + uint64(rng.IntN(bb.meta.Count))
		calls, bytes := log.calls, log.bytes
		start := time.Now()
		if cold {
			if r, err = block.Open(ctx, bb.meta.Size, read); err != nil {
				b.Fatal(err)
			}
		}
		m, err := r.Get(ctx, seq)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatalf("Get(%d): %v", seq, err)
		}
		if !sameMsg(m, bb.msgs[seq-1]) {
			b.Fatalf("Get(%d) = %+v, want %+v", seq, m, bb.msgs[seq-1])
		}
		if got := log.calls - calls; got != wantCalls || log.off < 8 || log.off+log.n > framesEnd {
			b.Fatalf("read of seq %d asked for %d ranges, the last %d+%d; want %d, the last inside the frames [8, %d)",
				seq, got, log.off, log.n, wantCalls, framesEnd)
		}
		maxBytes = max(maxBytes, log.bytes-bytes)
	}
	b.StopTimer()
	if maxBytes > budget {
		b.Errorf("a read asked for %d bytes, over the %d of a %d-byte tail and the %d-byte footer", maxBytes, budget, openTail, footer)
	}
	b.SetBytes(log.bytes / int64(b.N))
	b.ReportMetric(float64(log.bytes)/float64(b.N), "bytes-read/op")
	b.ReportMetric(float64(log.calls)/float64(b.N), "ranges/op")
	b.ReportMetric(float64(footer), "footer-bytes")
	reportLatency(b, lat)
}

// reportLatency reports the median and the 99th percentile of lat (nearest
// rank) in microseconds. It sorts lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	for _, p := range []struct {
		q    float64
		unit string
	}{{0.50, "p50-µs"}, {0.99, "p99-µs"}} {
		i := max(int(math.Ceil(p.q*float64(len(lat))))-1, 0)
		b.ReportMetric(float64(lat[i])/float64(time.Microsecond), p.unit)
	}
}

// countingTier is a Tier that counts the ranges GetRange reads and their
// bytes; a miss or a failed read is not counted. Safe for concurrent use, as
// the Tier it wraps is.
type countingTier struct {
	tier.Tier
	calls, bytes atomic.Int64
}

// GetRange reads the range from the wrapped tier and counts it if read.
func (t *countingTier) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	p, err := t.Tier.GetRange(ctx, key, off, n)
	if err == nil {
		t.calls.Add(1)
		t.bytes.Add(int64(len(p)))
	}
	return p, err
}

// BenchmarkControllerReadMsg reads one random message of a sealed 8 MiB
// block through a Controller over memory, file and dir:// blob tiers, with
// the block held by the named tier and every colder one: each hotter tier
// misses and the named one serves it, from the footer the controller keeps
// after the first read. It fails if another tier serves a read, and reports
// the bytes and ranges asked of all tiers per read, the share of reads the
// named tier served and the median and 99th-percentile latency. The bytes
// and ranges are those read: a hotter tier's miss costs no bytes.
func BenchmarkControllerReadMsg(b *testing.B) {
	bb := sealBenchBlock(b)
	for level, name := range []string{"memory", "file", "blob"} {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			tiers := []*countingTier{
				{Tier: tier.NewMemory(64<<20, 0)},
				{Tier: newFile(b, b.TempDir())},
				{Tier: openDirBlob(b)},
			}
			levels := make([]tier.Level, len(tiers))
			for i, t := range tiers {
				levels[i] = tier.Level{Tier: t}
			}
			c, err := tier.NewController(levels)
			if err != nil {
				b.Fatal(err)
			}
			if held, err := c.Put(ctx, bb.key, bb.blk); err != nil || len(held) != len(tiers) {
				b.Fatalf("Put: held by %v, %v", held, err)
			}
			for _, t := range tiers[:level] {
				if err := t.Delete(ctx, bb.key); err != nil {
					b.Fatal(err)
				}
			}
			// The first read opens the block; the timed ones find its footer cached.
			if _, from, err := c.ReadMsg(ctx, bb.key, bb.meta.Size, bb.meta.FirstSeq); err != nil || from != name {
				b.Fatalf("first ReadMsg: from %q, %v; want %q", from, err, name)
			}
			var calls0, bytes0 int64
			for _, t := range tiers {
				calls0 += t.calls.Load()
				bytes0 += t.bytes.Load()
			}
			hits0 := c.Stats()[level].Hits
			rng := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				seq := bb.meta.FirstSeq + uint64(rng.IntN(bb.meta.Count))
				start := time.Now()
				m, from, err := c.ReadMsg(ctx, bb.key, bb.meta.Size, seq)
				lat = append(lat, time.Since(start))
				if err != nil || from != name {
					b.Fatalf("ReadMsg(%d): from %q, %v; want %q", seq, from, err, name)
				}
				if !sameMsg(m, bb.msgs[seq-1]) {
					b.Fatalf("ReadMsg(%d) = %+v, want %+v", seq, m, bb.msgs[seq-1])
				}
			}
			b.StopTimer()
			var calls, bytes int64
			for _, t := range tiers {
				calls += t.calls.Load()
				bytes += t.bytes.Load()
			}
			calls, bytes = calls-calls0, bytes-bytes0
			b.SetBytes(bytes / int64(b.N))
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes-read/op")
			b.ReportMetric(float64(calls)/float64(b.N), "ranges/op")
			b.ReportMetric(float64(c.Stats()[level].Hits-hits0)/float64(b.N), "served-by-"+name)
			reportLatency(b, lat)
		})
	}
}
