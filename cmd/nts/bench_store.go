package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/service"
)

// The rows of kvObjRows, in order.
var (
	kvSpecs = func(keys int) []rowSpec {
		return []rowSpec{
			{"kv-get-p50", fmt.Sprintf("kv.get p50 at %s keys", count(keys)), atMost(2.0)},
			{"kv-get-p99", fmt.Sprintf("kv.get p99 at %s keys", count(keys)), nil},
		}
	}
	objSpec = func(size int) rowSpec {
		return rowSpec{"obj-get", fmt.Sprintf("%s object get", binaryFormat(float64(size))), atLeast(0.7)}
	}
)

// kvSize is the value size of the keys kvObjRows reads.
const kvSize = 128

// kvObjRows measures kv.get of archived keys against jetstream's
// KeyValue.Get of the same keys from the live bucket, and a whole object
// read through the client from the archive against jetstream's object
// store Get of the same object, each pair interleaved, on a replica of
// their own (memory, file and S3 tiers, defaults otherwise).
func (b *benchRun) kvObjRows(ctx context.Context) []row {
	kvRows, objRow := kvSpecs(b.sz.kvKeys), objSpec(b.sz.objSize)
	all := append(append([]rowSpec(nil), kvRows...), objRow)
	bucket, live, cold := b.name("BENCHKV"), b.name("BENCHLIVE"), b.name("BENCHCOLD")
	for _, s := range []string{"KV_" + bucket, "OBJ_" + live, "OBJ_" + cold} {
		b.made(kindStream, s)
	}
	done := b.step("putting %s keys of %d B in a KV bucket and a %s object in two object stores", count(b.sz.kvKeys), kvSize, binaryFormat(float64(b.sz.objSize)))
	pctx, cancel := context.WithTimeout(ctx, readPhaseTimeout)
	defer cancel()
	kv, err := perf.KVBacklog(pctx, b.js, bucket, b.sz.kvKeys, kvSize)
	var objs *perf.Objects
	if err == nil {
		objs, err = perf.PutObjects(pctx, b.js, live, cold, b.sz.objSize)
	}
	done()
	if err != nil {
		return b.failedRows(err, all...)
	}
	cfg := b.serviceConfig(filepath.Join(b.env.Dir, "kv"), "kv", "KV_"+bucket, "OBJ_"+cold)
	// Blocks fill to their target size, as under a steady stream of puts,
	// rather than seal every 20 ms of the drain: a key is looked up in the
	// blocks whose filters may hold it.
	cfg.Block.MaxLinger = service.Duration(time.Second)
	cfg.Complete()
	b.made(kindBucket, cfg.Index.Bucket)
	done = b.step("archiving them with nts")
	stop := b.runReplica(ctx, cfg)
	_, err = perf.WaitArchived(pctx, b.nc, perf.Target{Prefix: cfg.Service.Prefix, Stream: "KV_" + bucket}, uint64(b.sz.kvKeys))
	if err == nil {
		err = objs.Archive(pctx, b.nc, cfg.Service.Prefix)
	}
	done()
	defer func() {
		if err := stop(); err != nil {
			fmt.Fprintln(b.stderr, "nts bench: stopping the replica:", err)
		}
	}()
	if err != nil {
		return b.failedRows(err, all...)
	}

	var rows []row
	done = b.step("kv.get and kv.Get of random keys, %d samples", b.sz.samples)
	lat, err := perf.Measure(ctx, b.sz.warmup, b.sz.samples,
		perf.NativeKVGets(kv, b.sz.kvKeys, kvSize, 1),
		perf.KVGets(b.nc, cfg.Service.Prefix, bucket, b.sz.kvKeys, kvSize, "memory", 1))
	done()
	if err != nil {
		rows = append(rows, b.failedRows(err, kvRows...)...)
	} else {
		p50 := measured(kvRows[0].id, kvRows[0].name, micros("kv.Get", lat[0].P50), micros("", lat[1].P50), kvRows[0].target)
		p99 := measured(kvRows[1].id, kvRows[1].name, micros("kv.Get", lat[0].P99), micros("", lat[1].P99), kvRows[1].target)
		p50.Note = fmt.Sprintf("random keys of %s put once each (%d B values); kv.Get on the live bucket (direct get) against nts kv.get from the memory tier, interleaved, every reply checked", count(b.sz.kvKeys), kvSize)
		if b.sz.kvKeys < 1_000_000 {
			p50.Note += "; fewer keys than the 1M of the target: run without --quick for that"
		}
		rows = append(rows, p50, p99)
	}

	done = b.step("%s object reads, %d rounds", binaryFormat(float64(b.sz.objSize)), b.sz.objRounds)
	lat, err = perf.Measure(ctx, 2, b.sz.objRounds, objs.Native(), objs.Archived())
	done()
	if err != nil {
		return append(rows, b.failedRows(err, objRow)...)
	}
	r := measured(objRow.id, objRow.name, mbps("object store Get", b.sz.objSize, lat[0].P50), mbps("", b.sz.objSize, lat[1].P50), objRow.target)
	r.Note = fmt.Sprintf("median of %d reads each, interleaved: client.ObjectStore.Get from the archive (chunks purged from JetStream; memory tier) against jetstream's ObjectStore.Get from a live store; both read to EOF, digest checked", b.sz.objRounds)
	return append(rows, r)
}

// runReplica runs an nts replica of this run in this process until the
// returned stop is called.
func (b *benchRun) runReplica(ctx context.Context, cfg service.Config) (stop func() error) {
	rctx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- service.Run(rctx, cfg, b.log) }()
	return func() error {
		cancel()
		return <-ran
	}
}

// storedRow reports the stored bytes of the archived JSON logs over the raw
// bytes they hold.
func (b *benchRun) storedRow(ctx context.Context, s *readsService) []row {
	stored, raw, err := perf.Stored(ctx, b.nc, s.logs)
	if err != nil {
		return b.failedRows(err, logsSpec)
	}
	r := measured(logsSpec.id, logsSpec.name, bytesFig("raw", raw), bytesFig("stored", stored), logsSpec.target)
	r.Note = fmt.Sprintf("%s lines of blocktest.JSONLogs archived by nts with S2 (8 MiB blocks of 32 KiB frames); raw = the blocks' uncompressed frames", count(b.sz.logs))
	if st, err := b.js.Stream(ctx, s.logs.Stream); err == nil {
		r.Note += fmt.Sprintf("; JetStream holds them in %s", binaryFormat(float64(st.CachedInfo().State.Bytes)))
	}
	return []row{r}
}
