package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/service"
)

// drainStream is the backlog of size-byte messages drained.
func (b *benchRun) drainStream(size int) string { return b.name(fmt.Sprintf("BENCH%d", size)) }

// drainRows measures archive throughput draining a backlog of 256 B and of
// 4 KiB messages: nts (memory, file and dir:// blob tiers) against plain pull
// consumers acking every message, acking none, and acking every 8192nd
// under AckAll, as perf.DrainRounds takes them; to tell what the disk
// costs, nts with its memory tier alone against the consumer acking none;
// and, to tell how far a ratio moves by the machine alone, the consumer
// acking none against itself.
func (b *benchRun) drainRows(ctx context.Context) []row {
	var rows []row
	for _, tc := range []struct {
		n, size int
		tag     string
	}{{b.sz.drainSmall, 256, "256 B"}, {b.sz.drainLarge, 4096, "4 KiB"}} {
		what := fmt.Sprintf("archive drain %s × %s", count(tc.n), tc.tag)
		id := fmt.Sprintf("drain-%d", tc.size)
		specs := []rowSpec{
			{id + "-acking", what + " vs acking consumer", atLeast(1.0)},
			{id + "-noack", what + " vs no-ack ceiling", atLeast(0.8)},
			{id + "-ackall", what + " vs AckAll consumer", nil},
			{id + "-memory", what + ", memory tier only, vs no-ack ceiling", nil},
			{id + "-self", what + ": no-ack ceiling vs itself", nil},
		}
		f, err := b.drain(ctx, tc.n, tc.size)
		if err != nil {
			rows = append(rows, b.failedRows(err, specs...)...)
			continue
		}
		nts := rate("nts", tc.n, f.NTS)
		note := "tiers memory + file + dir:// blob, as BenchmarkArchiveDrain; one round"
		if f.Rounds > 1 {
			note = fmt.Sprintf("tiers memory + file + dir:// blob, as BenchmarkArchiveDrain; medians of %d rounds, the order of the six drains rotated", f.Rounds)
		}
		note += "; every message carries the same random payload (so a frame compresses across its messages); the plain consumers read through jetstream's Consume callback, nts through its own pull loop on an AckNone reader, moving its durable consumer past each committed block; the nts time runs from its consumer's creation to the index holding the last block"
		r := []row{
			measured(specs[0].id, specs[0].name, rate("acking each msg", tc.n, f.Acking), nts, specs[0].target),
			measured(specs[1].id, specs[1].name, rate("acking none", tc.n, f.NoAck), nts, specs[1].target),
			measured(specs[2].id, specs[2].name, rate("AckAll every 8192nd", tc.n, f.AckAll), nts, specs[2].target),
			measured(specs[3].id, specs[3].name, rate("acking none", tc.n, f.NoAck), rate("nts", tc.n, f.MemoryOnly), specs[3].target),
			measured(specs[4].id, specs[4].name, rate("acking none", tc.n, f.NoAck), rate("acking none, again", tc.n, f.NoAckAgain), specs[4].target),
		}
		r[0].Note = note
		r[3].Note = "nts with its file and blob tiers off, in the same rounds: set against the vs no-ack ceiling row, what writing each block to two fsynced files on this machine's disk costs the drain"
		r[4].Note = "a second consumer acking none, in the same rounds, against the first: 1.00× were the measurement exact; how far it lies from 1.00× shows how far the ratios above may move by chance in this run"
		rows = append(rows, r...)
	}
	return rows
}

// drain publishes the backlog and drains it each way.
func (b *benchRun) drain(ctx context.Context, n, size int) (perf.DrainFigures, error) {
	stream := b.drainStream(size)
	done := b.step("publishing %s × %d B backlog", count(n), size)
	b.made(kindStream, stream)
	err := perf.Backlog(ctx, b.js, stream, n, size)
	done()
	if err != nil {
		return perf.DrainFigures{}, err
	}
	tag := fmt.Sprintf("d%d", size)
	cfg := b.serviceConfig(filepath.Join(b.env.Dir, tag), tag, stream)
	// The default blob tier, dir:// under the data directory, as
	// BenchmarkArchiveDrain has it: the figure is the ingest's, not the S3
	// server's.
	cfg.Tiers.Blob = service.TierConfig{}
	for r := range b.sz.drainRounds {
		b.made(kindBucket, fmt.Sprintf("%s_r%d", cfg.Index.Bucket, r))
		b.made(kindBucket, fmt.Sprintf("%s_m%d", cfg.Index.Bucket, r))
	}
	done = b.step("draining it: nts (all tiers, then its memory tier alone) and 4 plain consumers, %d round(s) each", b.sz.drainRounds)
	f, err := perf.DrainRounds(ctx, b.nc, b.js, cfg, stream, n, size, b.sz.drainRounds)
	done()
	return f, err
}

// count writes n briefly: 200k, 12.5k, 1M, 950.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return fmt.Sprintf("%gM", float64(n)/1e6)
	case n >= 1000 && n%100 == 0:
		return fmt.Sprintf("%gk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
