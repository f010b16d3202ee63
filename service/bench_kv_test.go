package service_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// The bucket BenchmarkKVGet reads: 1M keys of 128 B values, one revision
// each. Set NTS_BENCH_KV_KEYS for another count.
const (
	kvBenchBucket = "BENCHKV"
	kvBenchKeys   = 1_000_000
	kvBenchSize   = 128
)

// Samples of the kv.get measurement, per probe, after kvBenchWarmup
// rounds that are not recorded; and its target, the most kv.get may take
// over kv.Get at p50.
const (
	kvBenchWarmup  = 50
	kvBenchSamples = 2000
	targetKVGet    = 2.0
)

// BenchmarkKVGet measures kv.get of random archived keys of a bucket of a
// million keys (served by the memory tier; every reply checked) against
// jetstream's KeyValue.Get of the same keys from the live bucket,
// interleaved in one run, and reports p50 and p99 of both and the ratio of
// the p50s. Run with -benchtime=1x: the setup (putting the keys, archiving
// them) takes far longer than the measurement.
func BenchmarkKVGet(b *testing.B) {
	keys := kvBenchKeys
	if s := os.Getenv("NTS_BENCH_KV_KEYS"); s != "" {
		var err error
		if keys, err = strconv.Atoi(s); err != nil || keys < 1 {
			b.Fatalf("NTS_BENCH_KV_KEYS=%q: want a positive count", s)
		}
	}
	srv := testenv.RunNATS(b)
	nc := testenv.Connect(b, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kv, err := perf.KVBacklog(ctx, js, kvBenchBucket, keys, kvBenchSize)
	if err != nil {
		b.Fatal(err)
	}
	cfg := service.Config{DataDir: b.TempDir(), Streams: []service.StreamSpec{{Name: "KV_" + kvBenchBucket}}}
	cfg.NATS.URL = srv.ClientURL()
	cfg.Block.MaxLinger = service.Duration(time.Second)
	cfg.Complete()
	runReplica(b, cfg, warnLog())
	if _, err := perf.WaitArchived(ctx, nc, perf.Target{Stream: "KV_" + kvBenchBucket}, uint64(keys)); err != nil {
		b.Fatal(err)
	}
	probes := []perf.Probe{
		perf.NativeKVGets(kv, keys, kvBenchSize, 1),
		perf.KVGets(nc, "", kvBenchBucket, keys, kvBenchSize, "memory", 1),
	}
	b.ResetTimer()
	var lat []perf.Latency
	for b.Loop() {
		if lat, err = perf.Measure(ctx, kvBenchWarmup, kvBenchSamples, probes...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	native, nts := lat[0], lat[1]
	b.ReportMetric(us(native.P50), "kv.Get-p50-µs")
	b.ReportMetric(us(native.P99), "kv.Get-p99-µs")
	b.ReportMetric(us(nts.P50), "nts-p50-µs")
	b.ReportMetric(us(nts.P99), "nts-p99-µs")
	ratio := perf.Ratio(nts.P50, native.P50)
	b.ReportMetric(ratio, "nts/kv.Get-p50")
	b.Logf("%d keys: kv.Get %v; nts kv.get %v", keys, native, nts)
	judge(b, "kv.get p50 against kv.Get", ratio, targetKVGet, true)
}
