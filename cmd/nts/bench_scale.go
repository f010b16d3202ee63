package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/perf"
)

// scaleRow measures msg.get with the index holding few blocks and many:
// two synthetic archives, committed through the file tier and the index,
// read from the file tier over the same number of blocks each, interleaved.
func (b *benchRun) scaleRow(ctx context.Context, s *readsService) []row {
	spec := scaleSpec(b.sz.scaleSmall, b.sz.scaleLarge)
	var (
		targets [2]perf.Target
		blocks  [2][]index.BlockMeta
		setup   time.Duration
	)
	for i, n := range []int{b.sz.scaleSmall, b.sz.scaleLarge} {
		syn := perf.Synthetic{Stream: b.name(fmt.Sprintf("IDX%d", n)), Blocks: n, MsgsPerBlock: 4, Size: 64}
		targets[i] = perf.Target{Prefix: s.cfg.Service.Prefix, Stream: syn.Stream, Size: syn.Size}
		done := b.step("committing %s synthetic blocks to the file tier and the index", count(n))
		start := time.Now()
		all, err := perf.CommitSynthetic(ctx, b.js, s.cfg.Index.Bucket, s.cfg.Tiers.File.Dir, syn)
		if err == nil {
			wctx, cancel := context.WithTimeout(ctx, readPhaseTimeout)
			_, err = perf.WaitBlocks(wctx, b.nc, targets[i], n)
			cancel()
		}
		setup += time.Since(start)
		done()
		if err != nil {
			return b.failedRows(err, spec)
		}
		blocks[i] = perf.Spread(all, b.sz.scaleRead)
	}
	done := b.step("point reads against both, %d samples", b.sz.samples)
	defer done()
	probes := []perf.Probe{s.noop.Probe(b.nc)}
	for i := range targets {
		if err := perf.TouchBlocks(ctx, b.nc, targets[i], "file", blocks[i]); err != nil {
			return b.failedRows(err, spec)
		}
		p, err := perf.PointReads(b.nc, targets[i], "file", blocks[i], uint64(i+3))
		if err != nil {
			return b.failedRows(err, spec)
		}
		probes = append(probes, p)
	}
	lat, err := perf.Measure(ctx, b.sz.warmup, b.sz.samples, probes...)
	if err != nil {
		return b.failedRows(err, spec)
	}
	r := measured(spec.id, spec.name, micros(count(b.sz.scaleSmall)+" blocks", lat[1].P50), micros("", lat[2].P50), spec.target)
	r.Note = fmt.Sprintf("synthetic blocks of 4 × 64 B, committed one by one through the file tier and the index (setup %.0f s); "+
		"reads from the file tier over %d blocks spread across each archive, footers cached; no-op p50 %v; target set by this command (lookups are a binary search)",
		setup.Seconds(), len(blocks[0]), round(lat[0].P50))
	return []row{r}
}
