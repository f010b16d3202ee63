package service_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// BenchmarkArchiveDrain drains a pre-published backlog four ways in one
// run: nts archiving it (memory + file + dir:// blob tiers), a plain pull
// consumer acking every message, one acking nothing (the ceiling), and one
// acking every 8192nd under AckAll as nts acks its blocks (the ceiling of an
// acknowledged consumer). Run with -benchtime=1x: each sub-benchmark is one
// whole drain.
func BenchmarkArchiveDrain(b *testing.B) {
	for _, tc := range []struct {
		n, size int
	}{{200_000, 256}, {50_000, 4096}} {
		b.Run(fmt.Sprintf("%dx%dB", tc.n, tc.size), func(b *testing.B) {
			srv := testenv.RunNATS(b)
			nc := testenv.Connect(b, srv)
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			stream := fmt.Sprintf("BENCH%d", tc.size)
			if err := perf.Backlog(ctx, js, stream, tc.n, tc.size); err != nil {
				b.Fatal(err)
			}
			cfg := service.Config{DataDir: b.TempDir(), Streams: []service.StreamSpec{{Name: stream}}}
			cfg.NATS.URL = srv.ClientURL()
			// The backlog's last, partial block seals after max_linger: keep
			// it short so the figure is the drain, not the wait.
			cfg.Block.MaxLinger = service.Duration(20 * time.Millisecond)
			cfg.Complete()
			var ack, none, batch, arch time.Duration
			b.ResetTimer()
			for range b.N {
				if ack, err = perf.Drain(ctx, js, stream, tc.n, perf.AckEach); err != nil {
					b.Fatal(err)
				}
				if none, err = perf.Drain(ctx, js, stream, tc.n, perf.AckNone); err != nil {
					b.Fatal(err)
				}
				if batch, err = perf.Drain(ctx, js, stream, tc.n, perf.AckBatch); err != nil {
					b.Fatal(err)
				}
				if arch, err = perf.Archive(ctx, nc, js, cfg, stream, tc.n); err != nil {
					b.Fatal(err)
				}
			}
			rate := func(d time.Duration) float64 { return float64(tc.n) / d.Seconds() }
			b.ReportMetric(rate(arch), "nts-msgs/s")
			b.ReportMetric(rate(ack), "ack-msgs/s")
			b.ReportMetric(rate(none), "noack-msgs/s")
			b.ReportMetric(rate(batch), "ackall-msgs/s")
			b.ReportMetric(rate(arch)/rate(batch), "x-ackall")
			b.ReportMetric(rate(arch)/rate(ack), "x-acking")
			b.ReportMetric(rate(arch)/rate(none), "x-ceiling")
			b.ReportMetric(float64(perf.PeakRSS())/(1<<20), "peak-rss-MiB")
		})
	}
}
