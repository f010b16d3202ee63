package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/service"
)

// BenchmarkObjectGet reads a 20 MiB object through the client from the
// archive (JetStream no longer holds its chunks) and the same object
// through JetStream's own object store Get (a second bucket that still
// holds it), in turn in each iteration. It reports the throughput of each
// and their ratio (target: at least 0.7); SetBytes counts both reads.
// nts bench measures the same with the same code (internal/perf).
func BenchmarkObjectGet(b *testing.B) {
	const size = 20 << 20
	e := newEnv(b)
	ctx := context.Background()
	objs, err := perf.PutObjects(ctx, e.js, "live", "cold", size)
	if err != nil {
		b.Fatal(err)
	}
	e.run(b, func(c *service.Config) {
		c.Block.TargetSize = 8 << 20
		c.Block.FrameSize = 128 << 10
	})
	if err := objs.Archive(ctx, e.nc, e.cfg.Service.Prefix); err != nil {
		b.Fatal(err)
	}
	native, archived := objs.Native(), objs.Archived()
	timed := func(p perf.Probe) time.Duration {
		start := time.Now()
		if err := p(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	b.SetBytes(2 * size)
	b.ReportAllocs()
	var (
		jsTime, ntsTime time.Duration
		n               int
	)
	for b.Loop() {
		jsTime += timed(native)
		ntsTime += timed(archived)
		n++
	}
	mb := float64(size) * float64(n) / 1e6
	b.ReportMetric(mb/jsTime.Seconds(), "jetstream-MB/s")
	b.ReportMetric(mb/ntsTime.Seconds(), "nts-MB/s")
	b.ReportMetric(jsTime.Seconds()/ntsTime.Seconds(), "nts/jetstream")
}
