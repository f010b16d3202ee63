package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/service"
)

// readsService is the nts replica the read figures are taken from, with
// what it archived, and a no-op micro service on a connection of its own.
type readsService struct {
	cfg   service.Config // completed
	reads perf.Target    // readSize-byte messages, seqs 1 to sz.reads
	logs  perf.Target    // JSON log lines
	noop  *perf.Noop
	stop  func() error
}

// readPhaseTimeout bounds each wait of the read measurements on the
// service (archiving, moving blocks between tiers).
const readPhaseTimeout = 5 * time.Minute

// readRows measures the read path against one replica (memory, file and S3
// tiers): point reads per tier, a read of a seq never archived, a range
// scan, reads against an index of few and of many blocks and stored bytes
// over raw on JSON logs.
func (b *benchRun) readRows(ctx context.Context) []row {
	s, err := b.startReads(ctx)
	if err != nil {
		return b.failedRows(err, b.readSpecs()...)
	}
	defer func() {
		if err := s.stop(); err != nil {
			fmt.Fprintln(b.stderr, "nts bench: stopping the replica:", err)
		}
	}()
	var rows []row
	for _, part := range []func(context.Context, *readsService) []row{
		b.pointReadRows, b.notArchivedRow, b.scanRow, b.scaleRow, b.storedRow,
	} {
		rows = append(rows, part(ctx, s)...)
		if ctx.Err() != nil {
			break
		}
	}
	return rows
}

// The rows of readRows, in order.
var (
	pointSpecs = []rowSpec{
		{"read-memory-p50", "point read p50, memory tier", atMost(1.5)},
		{"read-memory-p99", "point read p99, memory tier", nil},
		{"read-file-p50", "point read p50, file tier", atMost(2.0)},
		{"read-file-p99", "point read p99, file tier", nil},
		{"read-s3-p50", "point read p50, S3 tier", atMost(1.3)},
		{"read-s3-p99", "point read p99, S3 tier", nil},
	}
	notArchivedSpec = rowSpec{"read-not-archived", "read of a seq never archived, p50",
		&target{Text: "answered from the index: 0 tier reads"}}
	scanSpec  = rowSpec{"scan-s3", "range scan from the S3 tier", atLeast(0.5)}
	logsSpec  = rowSpec{"stored-ratio-json", "stored / raw bytes, JSON logs (S2)", atMost(0.40)}
	scaleSpec = func(small, large int) rowSpec {
		return rowSpec{"read-index-scale", fmt.Sprintf("point read p50, index of %s vs %s blocks", count(large), count(small)), atMost(1.2)}
	}
)

// readSpecs returns the rows of readRows.
func (b *benchRun) readSpecs() []rowSpec {
	return append(append([]rowSpec(nil), pointSpecs...),
		notArchivedSpec, scanSpec, scaleSpec(b.sz.scaleSmall, b.sz.scaleLarge), logsSpec)
}

// startReads publishes the streams read back, starts the replica archiving
// them and the no-op service, and waits until both streams are archived.
func (b *benchRun) startReads(ctx context.Context) (_ *readsService, err error) {
	reads, logs := b.name("READS"), b.name("LOGS")
	done := b.step("publishing %s × %d B messages and %s JSON log lines", count(b.sz.reads), readSize, count(b.sz.logs))
	b.made(kindStream, reads)
	b.made(kindStream, logs)
	err = perf.SeqBacklog(ctx, b.js, reads, b.sz.reads, readSize)
	if err == nil {
		err = perf.LogBacklog(ctx, b.js, logs, b.sz.logs, 1)
	}
	done()
	if err != nil {
		return nil, err
	}
	cfg := b.serviceConfig(filepath.Join(b.env.Dir, "reads"), "r", reads, logs)
	cfg.Complete()
	b.made(kindBucket, cfg.Index.Bucket)
	s := &readsService{
		cfg:   cfg,
		reads: perf.Target{Prefix: cfg.Service.Prefix, Stream: reads, Size: readSize},
		logs:  perf.Target{Prefix: cfg.Service.Prefix, Stream: logs},
	}
	done = b.step("archiving them with nts")
	defer done()
	rctx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- service.Run(rctx, cfg, b.log) }()
	noopConn, err := nats.Connect(b.env.NATSURL, nats.Name("nts-bench-noop"))
	if err != nil {
		cancel()
		return nil, errors.Join(err, <-ran)
	}
	s.stop = func() error {
		var err error
		if s.noop != nil {
			err = s.noop.Stop()
		}
		noopConn.Close()
		cancel()
		return errors.Join(err, <-ran)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.stop())
		}
	}()
	if s.noop, err = perf.StartNoop(noopConn); err != nil {
		return nil, err
	}
	wctx, wcancel := context.WithTimeout(ctx, readPhaseTimeout)
	defer wcancel()
	if _, err := perf.WaitArchived(wctx, b.nc, s.reads, uint64(b.sz.reads)); err != nil {
		return nil, err
	}
	if _, err := perf.WaitArchived(wctx, b.nc, s.logs, uint64(b.sz.logs)); err != nil {
		return nil, err
	}
	return s, nil
}

// pointReadRows measures msg.get of random seqs served by each tier
// against a no-op micro round trip interleaved with it, and for the S3 tier
// also against one ranged GET of a frame's size to the same server.
func (b *benchRun) pointReadRows(ctx context.Context, s *readsService) []row {
	var rows []row
	for i, tc := range []struct {
		tier, label string
		samples     int
	}{{"memory", "memory", b.sz.samples}, {"file", "file", b.sz.samples}, {"blob", "S3", b.sz.blobSamples}} {
		specs := pointSpecs[2*i : 2*i+2]
		done := b.step("point reads from the %s tier, %d samples", tc.label, tc.samples)
		lat, err := b.pointReads(ctx, s, tc.tier, tc.samples)
		done()
		if err != nil {
			rows = append(rows, b.failedRows(err, specs...)...)
			continue
		}
		noop, read := lat[0], lat[1]
		if tc.tier != "blob" {
			p50 := measured(specs[0].id, specs[0].name, micros("no-op micro RTT", noop.P50), micros("", read.P50), specs[0].target)
			p99 := measured(specs[1].id, specs[1].name, micros("no-op micro RTT", noop.P99), micros("", read.P99), specs[1].target)
			p50.Note = fmt.Sprintf("msg.get of random seqs over %s × %d B, every reply checked; footers cached; interleaved with the no-op", count(b.sz.reads), readSize)
			rows = append(rows, p50, p99)
			continue
		}
		get := lat[2]
		p50 := measured(specs[0].id, specs[0].name, micros("no-op + ranged GET", noop.P50+get.P50), micros("", read.P50), specs[0].target)
		p99 := measured(specs[1].id, specs[1].name, micros("no-op + ranged GET", noop.P99+get.P99), micros("", read.P99), specs[1].target)
		p50.Note = fmt.Sprintf("reference: no-op p50 %v plus a ranged GET of a frame's size straight to the S3 server p50 %v", round(noop.P50), round(get.P50))
		rows = append(rows, p50, p99)
	}
	return rows
}

// pointReads places every block of the reads stream in tierName, opens them
// there and measures the no-op, the reads (and, from the blob tier, ranged
// GETs) interleaved.
func (b *benchRun) pointReads(ctx context.Context, s *readsService, tierName string, samples int) ([]perf.Latency, error) {
	pctx, cancel := context.WithTimeout(ctx, readPhaseTimeout)
	defer cancel()
	blocks, err := perf.Place(pctx, b.nc, s.reads, tierName)
	if err != nil {
		return nil, err
	}
	if err := perf.TouchBlocks(pctx, b.nc, s.reads, tierName, blocks); err != nil {
		return nil, err
	}
	reads, err := perf.PointReads(b.nc, s.reads, tierName, blocks, 1)
	if err != nil {
		return nil, err
	}
	probes := []perf.Probe{s.noop.Probe(b.nc), reads}
	if tierName == "blob" {
		get, err := perf.RangedGets(pctx, s.cfg.Tiers.Blob.URL, b.env.BlobOptions, blocks, 0, 2)
		if err != nil {
			return nil, err
		}
		probes = append(probes, get)
	}
	return perf.Measure(ctx, b.sz.warmup, samples, probes...)
}

// notArchivedRow measures msg.get of a seq past the archive's end against
// the no-op, and checks from admin.status that no tier was read for it.
func (b *benchRun) notArchivedRow(ctx context.Context, s *readsService) []row {
	seq := uint64(b.sz.reads) + 1_000_000
	done := b.step("reads of seq %d, never archived, %d samples", seq, b.sz.samples)
	defer done()
	_, before, err := perf.TierReads(ctx, b.nc, s.cfg.Service.Prefix)
	if err != nil {
		return b.failedRows(err, notArchivedSpec)
	}
	lat, err := perf.Measure(ctx, b.sz.warmup, b.sz.samples, s.noop.Probe(b.nc), perf.NotArchived(b.nc, s.reads, seq))
	if err != nil {
		return b.failedRows(err, notArchivedSpec)
	}
	_, after, err := perf.TierReads(ctx, b.nc, s.cfg.Service.Prefix)
	if err != nil {
		return b.failedRows(err, notArchivedSpec)
	}
	r := measured(notArchivedSpec.id, notArchivedSpec.name, micros("no-op micro RTT", lat[0].P50), micros("", lat[1].P50), notArchivedSpec.target)
	ok := after == before
	r.OK = &ok
	r.Note = fmt.Sprintf("%d requests, every reply a 404; block reads of all tiers in admin.status: %d before, %d after",
		b.sz.warmup+b.sz.samples, before, after)
	return []row{r}
}

// scanRow measures msg.range over the whole reads stream from the S3 tier
// against a JetStream ordered consumer replaying it.
func (b *benchRun) scanRow(ctx context.Context, s *readsService) []row {
	done := b.step("range scan of %s messages from the S3 tier and a consumer replay", count(b.sz.reads))
	defer done()
	pctx, cancel := context.WithTimeout(ctx, readPhaseTimeout)
	defer cancel()
	if _, err := perf.Place(pctx, b.nc, s.reads, "blob"); err != nil {
		return b.failedRows(err, scanSpec)
	}
	replay, err := perf.Replay(pctx, b.js, s.reads, 1, b.sz.reads)
	if err != nil {
		return b.failedRows(err, scanSpec)
	}
	scan, err := perf.RangeScan(pctx, b.nc, s.reads, "blob", 1, b.sz.reads)
	if err != nil {
		return b.failedRows(err, scanSpec)
	}
	r := measured(scanSpec.id, scanSpec.name, rate("ordered consumer replay", b.sz.reads, replay), rate("", b.sz.reads, scan), scanSpec.target)
	r.Note = fmt.Sprintf("%s × %d B, every message checked, in pages of msg.range", count(b.sz.reads), readSize)
	return []row{r}
}

// round rounds a latency for a note.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
