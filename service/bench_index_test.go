package service_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// Samples of the latency measurements of this file, after scaleWarmup
// rounds that are not recorded.
const (
	scaleWarmup  = 50
	scaleSamples = 2000
)

// scaleEnv is an nts replica (memory, file and dir:// blob tiers) on an
// embedded server, a requester connection and a no-op micro service on a
// connection of its own.
type scaleEnv struct {
	cfg  service.Config
	nc   *nats.Conn
	js   jetstream.JetStream
	noop *perf.Noop
}

// newScaleEnv starts the replica, archiving streams; everything stops when
// tb ends.
func newScaleEnv(tb testing.TB, streams ...string) *scaleEnv {
	tb.Helper()
	srv := testenv.RunNATS(tb)
	e := &scaleEnv{nc: testenv.Connect(tb, srv)}
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		tb.Fatal(err)
	}
	if e.noop, err = perf.StartNoop(testenv.Connect(tb, srv)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.noop.Stop(); err != nil {
			tb.Error(err)
		}
	})
	e.cfg = service.Config{DataDir: tb.TempDir()}
	e.cfg.NATS.URL = srv.ClientURL()
	e.cfg.Block.MaxLinger = service.Duration(20 * time.Millisecond)
	e.cfg.Tiers.PolicyInterval = service.Duration(time.Hour) // no eviction or sweep while measuring
	for _, s := range streams {
		e.cfg.Streams = append(e.cfg.Streams, service.StreamSpec{Name: s})
	}
	e.cfg.Complete()
	runReplica(tb, e.cfg, nil)
	return e
}

// synthetic commits a synthetic archive of n blocks to the replica's file
// tier and index, waits until the replica's view holds it, and returns
// scaleRead of its blocks spread over it, opened by the replica.
func (e *scaleEnv) synthetic(tb testing.TB, stream string, n, scaleRead int) (perf.Target, []index.BlockMeta) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	syn := perf.Synthetic{Stream: stream, Blocks: n, MsgsPerBlock: 4, Size: 64}
	t := perf.Target{Stream: stream, Size: syn.Size}
	start := time.Now()
	all, err := perf.CommitSynthetic(ctx, e.js, e.cfg.Index.Bucket, e.cfg.Tiers.File.Dir, syn)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := perf.WaitBlocks(ctx, e.nc, t, n); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("%d synthetic blocks committed in %v", n, time.Since(start).Round(time.Millisecond))
	blocks := perf.Spread(all, scaleRead)
	if err := perf.TouchBlocks(ctx, e.nc, t, "file", blocks); err != nil {
		tb.Fatal(err)
	}
	return t, blocks
}

// BenchmarkIndexScale measures msg.get with the index holding 1k blocks of
// a stream and 100k of another: synthetic archives of 4 × 64 B per block,
// committed through the file tier and the index; reads of random seqs over
// 1000 blocks spread across each, served by the file tier with footers
// cached, interleaved with each other and with a no-op micro round trip.
// The 100k blocks take a minute or two to commit (two fsyncs each). Run
// with -benchtime=1x.
func BenchmarkIndexScale(b *testing.B) {
	const small, large, read = 1_000, 100_000, 1_000
	e := newScaleEnv(b)
	probes := []perf.Probe{e.noop.Probe(e.nc)}
	for i, n := range []int{small, large} {
		t, blocks := e.synthetic(b, fmt.Sprintf("IDX%d", n), n, read)
		p, err := perf.PointReads(e.nc, t, "file", blocks, uint64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		probes = append(probes, p)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var lat []perf.Latency
	for range b.N {
		var err error
		if lat, err = perf.Measure(ctx, scaleWarmup, scaleSamples, probes...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(scaleUs(lat[0].P50), "noop-p50-us")
	b.ReportMetric(scaleUs(lat[1].P50), "1k-p50-us")
	b.ReportMetric(scaleUs(lat[2].P50), "100k-p50-us")
	b.ReportMetric(scaleUs(lat[1].P99), "1k-p99-us")
	b.ReportMetric(scaleUs(lat[2].P99), "100k-p99-us")
	b.ReportMetric(perf.Ratio(lat[2].P50, lat[1].P50), "x-100k/1k")
}

// BenchmarkNotArchived measures msg.get of a seq the archive never held
// against a no-op micro round trip, interleaved, and fails if any tier
// was read for it (the tiers' read counters of admin.status).
func BenchmarkNotArchived(b *testing.B) {
	e := newScaleEnv(b)
	t, blocks := e.synthetic(b, "NEVER", 10, 10)
	ctx := context.Background()
	_, before, err := perf.TierReads(ctx, e.nc, "")
	if err != nil {
		b.Fatal(err)
	}
	probe := perf.NotArchived(e.nc, t, blocks[len(blocks)-1].LastSeq+1000)
	b.ReportAllocs()
	b.ResetTimer()
	var lat []perf.Latency
	for range b.N {
		if lat, err = perf.Measure(ctx, scaleWarmup, scaleSamples, e.noop.Probe(e.nc), probe); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_, after, err := perf.TierReads(ctx, e.nc, "")
	if err != nil {
		b.Fatal(err)
	}
	if after != before {
		b.Fatalf("reads of a seq never archived made %d tier reads", after-before)
	}
	b.ReportMetric(scaleUs(lat[0].P50), "noop-p50-us")
	b.ReportMetric(scaleUs(lat[1].P50), "p50-us")
	b.ReportMetric(scaleUs(lat[1].P99), "p99-us")
	b.ReportMetric(perf.Ratio(lat[1].P50, lat[0].P50), "x-noop")
	b.ReportMetric(float64(after-before), "tier-reads")
}

// BenchmarkStoredRatio archives 40k JSON log lines (blocktest.JSONLogs)
// with the default S2 compression and reports the stored bytes over the
// raw bytes the blocks hold (target: at most 0.40). Run with
// -benchtime=1x: each iteration archives the lines once more, as a stream
// of its own.
func BenchmarkStoredRatio(b *testing.B) {
	const lines = 40_000
	streams := make([]string, b.N)
	for i := range streams {
		streams[i] = fmt.Sprintf("LOGS%d", i)
	}
	e := newScaleEnv(b, streams...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stored, raw int64
	b.ReportAllocs()
	b.ResetTimer()
	for _, s := range streams {
		if err := perf.LogBacklog(ctx, e.js, s, lines, 1); err != nil {
			b.Fatal(err)
		}
		t := perf.Target{Stream: s}
		if _, err := perf.WaitArchived(ctx, e.nc, t, lines); err != nil {
			b.Fatal(err)
		}
		var err error
		if stored, raw, err = perf.Stored(ctx, e.nc, t); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.SetBytes(raw)
	b.ReportMetric(float64(stored)/float64(raw), "stored/raw")
	b.ReportMetric(float64(raw)/(1<<20), "raw-MiB")
}

// scaleUs is d in microseconds, for ReportMetric.
func scaleUs(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
