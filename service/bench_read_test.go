package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier/blob"
)

// The stream BenchmarkReads reads: 100k messages of 1 KiB of incompressible
// bytes, a dozen 8 MiB blocks of 128 KiB frames.
const (
	readsStream = "READS"
	readsMsgs   = 100_000
	readsSize   = 1024
)

// Samples of one point-read measurement, per probe, after readsWarmup
// rounds that are not recorded.
const (
	readsWarmup      = 50
	readsSamples     = 2000
	readsBlobSamples = 500
)

// readsScanRounds is how many times the range scan and the replay each run
// in one op; the fastest of each is reported.
const readsScanRounds = 3

// Targets of the read path, as ratios to references measured in the same
// run: a point read from memory or file against a no-op micro round trip,
// one from the blob tier against a no-op round trip plus one ranged GET of
// a frame, and a range scan from the blob tier against a JetStream ordered
// consumer replaying the same messages (a rate, so at least).
const (
	targetMemory = 1.5
	targetFile   = 2.0
	targetBlob   = 1.3
	targetScan   = 0.5
)

// readsEnv is an nts replica (memory, file and S3 tiers, S3 on versitygw)
// that has archived readsStream, a requester connection, and a no-op micro
// service on a connection of its own.
type readsEnv struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	noop    *perf.Noop
	target  perf.Target
	blobURL string
	blobOpt blob.Options
}

// newReadsEnv publishes readsStream, starts the replica and waits until it
// has archived every message. Everything stops when tb ends.
func newReadsEnv(tb testing.TB) *readsEnv {
	tb.Helper()
	srv := testenv.RunNATS(tb)
	s3 := testenv.RunVersity(tb)
	testenv.CreateBucket(tb, s3, "nts-reads")
	e := &readsEnv{
		nc:      testenv.Connect(tb, srv),
		target:  perf.Target{Stream: readsStream, Size: readsSize},
		blobURL: s3.URL("nts-reads", "archive"),
		blobOpt: blob.Options{AccessKey: s3.AccessKey, SecretKey: s3.SecretKey},
	}
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := perf.SeqBacklog(ctx, e.js, readsStream, readsMsgs, readsSize); err != nil {
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

	cfg := service.Config{DataDir: tb.TempDir(), Streams: []service.StreamSpec{{Name: readsStream}}}
	cfg.NATS.URL = srv.ClientURL()
	cfg.Tiers.Blob.URL = e.blobURL
	cfg.Tiers.Blob.AccessKey, cfg.Tiers.Blob.SecretKey = s3.AccessKey, s3.SecretKey
	// A block seals when full, or max_linger after its first message
	// arrived: long enough for the drain of the backlog to fill every
	// block but the last, short enough not to wait long for that one.
	cfg.Block.MaxLinger = service.Duration(time.Second)
	cfg.Complete()
	runReplica(tb, cfg, warnLog())
	if _, err := perf.WaitArchived(ctx, e.nc, e.target, readsMsgs); err != nil {
		tb.Fatal(err)
	}
	return e
}

// place puts every block in tierName and opens it there, and returns the
// blocks.
func (e *readsEnv) place(tb testing.TB, tierName string) []index.BlockMeta {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	blocks, err := perf.Place(ctx, e.nc, e.target, tierName)
	if err != nil {
		tb.Fatal(err)
	}
	if err := perf.TouchBlocks(ctx, e.nc, e.target, tierName, blocks); err != nil {
		tb.Fatal(err)
	}
	return blocks
}

// judge logs how a ratio compares with its target, which it must not
// exceed (atMost) or must reach.
func judge(tb testing.TB, what string, ratio, target float64, atMost bool) {
	tb.Helper()
	met := ratio <= target
	cmp := "≤"
	if !atMost {
		met, cmp = ratio >= target, "≥"
	}
	verdict := "met"
	if !met {
		verdict = "MISSED"
	}
	tb.Logf("%s: %.2f× (target %s %.2f×): %s", what, ratio, cmp, target, verdict)
}

// fastest returns the shorter of two durations, where 0 is none.
func fastest(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// us returns d in microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkReads measures the read path in one run, each figure against a
// reference taken in the same run and interleaved with it: point reads
// (msg.get of random seqs, every reply checked) served by the memory, file
// and blob (S3 on versitygw) tiers against a no-op micro round trip on the
// same connection, the blob tier also against one ranged GET of a frame's
// size to the same S3 server; and a range scan (msg.range) of the whole
// stream from the blob tier against a JetStream ordered consumer replaying
// it. Before each point-read measurement every block is moved to the tier
// measured and opened there (footers cached). Run with -benchtime=1x.
func BenchmarkReads(b *testing.B) {
	e := newReadsEnv(b)
	for _, tc := range []struct {
		tier    string
		samples int
		target  float64
	}{
		{"memory", readsSamples, targetMemory},
		{"file", readsSamples, targetFile},
		{"blob", readsBlobSamples, targetBlob},
	} {
		b.Run(tc.tier, func(b *testing.B) {
			blocks := e.place(b, tc.tier)
			ctx := context.Background()
			reads, err := perf.PointReads(e.nc, e.target, tc.tier, blocks, 1)
			if err != nil {
				b.Fatal(err)
			}
			probes := []perf.Probe{e.noop.Probe(e.nc), reads}
			if tc.tier == "blob" {
				get, err := perf.RangedGets(ctx, e.blobURL, e.blobOpt, blocks, 0, 2)
				if err != nil {
					b.Fatal(err)
				}
				probes = append(probes, get)
			}
			b.SetBytes(int64(tc.samples * readsSize))
			b.ReportAllocs()
			b.ResetTimer()
			var lat []perf.Latency
			for range b.N {
				if lat, err = perf.Measure(ctx, readsWarmup, tc.samples, probes...); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			noop, read := lat[0], lat[1]
			b.ReportMetric(us(read.P50), "p50-us")
			b.ReportMetric(us(read.P99), "p99-us")
			b.ReportMetric(us(noop.P50), "noop-p50-us")
			b.ReportMetric(us(noop.P99), "noop-p99-us")
			b.ReportMetric(perf.Ratio(read.P50, noop.P50), "x-noop")
			b.ReportMetric(perf.Ratio(read.P99, noop.P99), "x-noop-p99")
			b.Logf("no-op %v", noop)
			b.Logf("%s %v", tc.tier, read)
			if tc.tier != "blob" {
				judge(b, tc.tier+" p50 / no-op p50", perf.Ratio(read.P50, noop.P50), tc.target, true)
				return
			}
			get := lat[2]
			b.ReportMetric(us(get.P50), "s3get-p50-us")
			b.ReportMetric(us(get.P99), "s3get-p99-us")
			b.ReportMetric(perf.Ratio(read.P50, noop.P50+get.P50), "x-noop+get")
			b.Logf("S3 ranged GET %v", get)
			judge(b, "blob p50 / (no-op p50 + S3 GET p50)", perf.Ratio(read.P50, noop.P50+get.P50), tc.target, true)
		})
	}
	b.Run("range", func(b *testing.B) {
		e.place(b, "blob")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.SetBytes(2 * readsScanRounds * readsMsgs * readsSize)
		b.ReportAllocs()
		b.ResetTimer()
		// The best of a few interleaved rounds of each: a busy machine
		// slows a round, never speeds one up.
		var scan, replay time.Duration
		for range b.N {
			for range readsScanRounds {
				r, err := perf.Replay(ctx, e.js, e.target, 1, readsMsgs)
				if err != nil {
					b.Fatal(err)
				}
				s, err := perf.RangeScan(ctx, e.nc, e.target, "blob", 1, readsMsgs)
				if err != nil {
					b.Fatal(err)
				}
				replay, scan = fastest(replay, r), fastest(scan, s)
			}
		}
		b.StopTimer()
		rate := func(d time.Duration) float64 { return readsMsgs / d.Seconds() }
		b.ReportMetric(rate(scan), "nts-msgs/s")
		b.ReportMetric(rate(replay), "replay-msgs/s")
		b.ReportMetric(rate(scan)/rate(replay), "x-replay")
		judge(b, "range scan from blob / consumer replay", rate(scan)/rate(replay), targetScan, false)
	})
}
