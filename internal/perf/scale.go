package perf

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier"
)

// Synthetic describes an archive made without an ingest, to read from an
// index of many blocks: Blocks blocks of MsgsPerBlock messages each, seqs
// 1 to Blocks*MsgsPerBlock without gaps, message seq carrying
// SeqPayload(seq, Size) on subject "<Stream>.data", stored uncompressed
// (each block is a few hundred bytes: compression would not pay).
type Synthetic struct {
	Stream       string
	Blocks       int
	MsgsPerBlock int
	Size         int
}

// syntheticLeader is the instance id the synthetic commits are made by.
const syntheticLeader = "nts-bench-synthetic"

// syntheticWriters is how many block files are written at once: each
// write waits on two fsyncs.
const syntheticWriters = 8

// CommitSynthetic writes the blocks of s to the file tier in fileDir (the
// directory of the file tier of the replica that will serve them), then
// commits each to the index in bucket, in sequence order, as the stream's
// leader would; the file writes run ahead of the commits, several at once.
// The archive must be new (no head for s.Stream). It returns the blocks
// committed, whose index entries name the file tier alone.
func CommitSynthetic(ctx context.Context, js jetstream.JetStream, bucket, fileDir string, s Synthetic) ([]index.BlockMeta, error) {
	if s.Blocks < 1 || s.MsgsPerBlock < 1 {
		return nil, fmt.Errorf("perf: synthetic archive of %d blocks of %d messages", s.Blocks, s.MsgsPerBlock)
	}
	ft, err := tier.NewFile(fileDir)
	if err != nil {
		return nil, err
	}
	ix, err := index.Open(ctx, js, index.Options{Bucket: bucket})
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	if h, _, err := ix.Head(ctx, s.Stream); err != nil || h.LastSeq != 0 {
		return nil, fmt.Errorf("perf: synthetic archive %q is not new (head at seq %d): %v", s.Stream, h.LastSeq, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// written[i] receives block i's meta once its file is written.
	written := make([]chan index.BlockMeta, s.Blocks)
	for i := range written {
		written[i] = make(chan index.BlockMeta, 1)
	}
	errs := make(chan error, syntheticWriters)
	var wg sync.WaitGroup
	for w := range syntheticWriters {
		wg.Go(func() {
			for i := w; i < s.Blocks; i += syntheticWriters {
				m, err := writeSynthetic(ctx, ft, s, i)
				if err != nil {
					errs <- err
					cancel()
					return
				}
				written[i] <- m
			}
		})
	}
	out, cerr := commitInOrder(ctx, ix, written)
	cancel()
	wg.Wait()
	close(errs)
	// A failed write cancels the commits, a failed commit the writes: the
	// error to report is the one that is not a cancellation.
	var werr error
	for err := range errs {
		if werr == nil || errors.Is(werr, context.Canceled) {
			werr = err
		}
	}
	switch {
	case cerr != nil && !errors.Is(cerr, context.Canceled):
		return nil, cerr
	case werr != nil:
		return nil, werr
	case cerr != nil:
		return nil, cerr
	}
	return out, nil
}

// commitInOrder commits the blocks as their files are written, in order.
func commitInOrder(ctx context.Context, ix *index.Index, written []chan index.BlockMeta) ([]index.BlockMeta, error) {
	out := make([]index.BlockMeta, 0, len(written))
	var rev uint64
	for _, ch := range written {
		var m index.BlockMeta
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var err error
		if rev, err = ix.Commit(ctx, m, rev, syntheticLeader, ""); err != nil {
			return nil, fmt.Errorf("perf: commit synthetic block %s: %w", m.Key, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// syntheticEpoch is the timestamp of a synthetic archive's first message.
var syntheticEpoch = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// writeSynthetic builds block i of s and writes it to ft.
func writeSynthetic(ctx context.Context, ft *tier.File, s Synthetic, i int) (index.BlockMeta, error) {
	b, err := block.NewBuilder(block.Options{Stream: s.Stream, Codec: block.CodecNone})
	if err != nil {
		return index.BlockMeta{}, err
	}
	first := uint64(i*s.MsgsPerBlock) + 1
	subj := s.Stream + ".data"
	for seq := first; seq < first+uint64(s.MsgsPerBlock); seq++ {
		m := block.Msg{Seq: seq, Subject: subj, Data: SeqPayload(seq, s.Size), Time: syntheticEpoch + int64(seq)*int64(time.Millisecond)}
		if err := b.Add(m); err != nil {
			return index.BlockMeta{}, err
		}
	}
	blk, bm, err := b.Seal()
	if err != nil {
		return index.BlockMeta{}, err
	}
	key, err := tier.Key(s.Stream, bm.FirstSeq, bm.LastSeq)
	if err != nil {
		return index.BlockMeta{}, err
	}
	if err := ft.Put(ctx, key, blk); err != nil {
		return index.BlockMeta{}, err
	}
	return index.BlockMeta{
		Stream: s.Stream, FirstSeq: bm.FirstSeq, LastSeq: bm.LastSeq,
		FirstTime: bm.FirstTime, LastTime: bm.LastTime, Count: uint64(bm.Count),
		RawSize: bm.RawSize, Size: bm.Size, Frames: bm.Frames, Codec: bm.Codec.String(),
		Checksum: bm.Checksum, Tiers: []string{ft.Name()}, Key: key, Version: int(bm.Version),
		Created: time.Now().UnixNano(),
	}, nil
}

// Spread returns n blocks of blocks evenly spread over them (all of them
// when there are n or fewer): the blocks reads are drawn from, so that
// reads of a large archive and of a small one open as many blocks.
func Spread(blocks []index.BlockMeta, n int) []index.BlockMeta {
	if n >= len(blocks) || n < 1 {
		return blocks
	}
	out := make([]index.BlockMeta, n)
	for i := range out {
		out[i] = blocks[i*len(blocks)/n]
	}
	return out
}

// WaitBlocks waits until the replica answering stream.info for t's stream
// lists n blocks or more, and returns how many it lists. It waits until ctx
// is done: give ctx a deadline.
func WaitBlocks(ctx context.Context, nc *nats.Conn, t Target, n int) (int, error) {
	subj := t.prefix() + ".stream." + t.Stream
	for {
		var info service.StreamInfo
		err := ntsRequest(ctx, nc, subj, nil, &info)
		if err == nil && info.Blocks >= n {
			return info.Blocks, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %d blocks of %s: %w (last: %d blocks, %v)", n, t.Stream, ctx.Err(), info.Blocks, err)
		case <-time.After(pollEvery):
		}
	}
}
