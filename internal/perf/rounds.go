package perf

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/service"
)

// DrainFigures are the medians of several rounds of draining one backlog
// six ways: nts archiving it, nts archiving it to its memory tier alone,
// the three reference consumers of Drain, and the consumer acking nothing
// a second time.
type DrainFigures struct {
	Msgs, Size int
	Rounds     int
	// NTS, Acking, NoAck and AckAll are the median drain times.
	NTS, Acking, NoAck, AckAll time.Duration
	// MemoryOnly is the median time of nts with its file and blob tiers
	// off: set against NTS, what writing each block to two fsynced files
	// costs on the machine.
	MemoryOnly time.Duration
	// NoAckAgain is the median time of the second consumer acking nothing
	// in each round: set against NoAck, how far apart the medians of two
	// identical drains lie on the machine.
	NoAckAgain time.Duration
}

// Rate is msgs per second over d.
func (f DrainFigures) Rate(d time.Duration) float64 { return float64(f.Msgs) / d.Seconds() }

// VsAcking is nts's rate over the consumer acking every message.
func (f DrainFigures) VsAcking() float64 { return f.Acking.Seconds() / f.NTS.Seconds() }

// VsCeiling is nts's rate over the consumer acking nothing.
func (f DrainFigures) VsCeiling() float64 { return f.NoAck.Seconds() / f.NTS.Seconds() }

// MemoryOnlyVsCeiling is the rate of nts archiving to its memory tier
// alone over the consumer acking nothing.
func (f DrainFigures) MemoryOnlyVsCeiling() float64 {
	return f.NoAck.Seconds() / f.MemoryOnly.Seconds()
}

// CeilingVsItself is the rate of the second consumer acking nothing over
// the first's: 1 were the measurement exact, so how far it lies from 1
// shows how far the other ratios may move by chance.
func (f DrainFigures) CeilingVsItself() float64 {
	return f.NoAck.Seconds() / f.NoAckAgain.Seconds()
}

// VsAckAll is nts's rate over the consumer acking every AckBatchSize-th
// message under AckAll.
func (f DrainFigures) VsAckAll() float64 { return f.AckAll.Seconds() / f.NTS.Seconds() }

// DrainRounds drains the first n messages of stream (of size bytes each)
// rounds times each way, rotating the order of the six drains from round
// to round so that none always runs first or last on a machine whose speed
// drifts, and returns the medians. Each nts round archives the backlog from
// its start into an index bucket and data directory of its own: cfg is the
// replica's configuration before Complete, with DataDir set (round r uses
// DataDir/r and bucket <cfg.Index.Bucket or nts_index>_r<r>; with the file
// and blob tiers off, DataDir/m<r> and bucket ..._m<r>) and its streams
// selecting stream.
func DrainRounds(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg service.Config, stream string, n, size, rounds int) (DrainFigures, error) {
	if rounds < 1 {
		rounds = 1
	}
	bucket := cfg.Index.Bucket
	if bucket == "" {
		bucket = "nts_index"
	}
	var nts, memOnly, acking, noack, ackall, noackAgain []time.Duration
	archive := func(tag string, r int, memoryOnly bool, into *[]time.Duration) error {
		c := cfg
		c.DataDir = filepath.Join(cfg.DataDir, fmt.Sprint(tag, r))
		c.Index.Bucket = fmt.Sprintf("%s_%s%d", bucket, cmp.Or(tag, "r"), r)
		if memoryOnly {
			off := false
			c.Tiers.File.Enabled, c.Tiers.Blob.Enabled = &off, &off
		}
		c.Complete()
		d, err := Archive(ctx, nc, js, c, stream, n)
		*into = append(*into, d)
		return err
	}
	drain := func(ack Ack, into *[]time.Duration) func(int) error {
		return func(int) error {
			d, err := Drain(ctx, js, stream, n, ack)
			*into = append(*into, d)
			return err
		}
	}
	runs := []func(r int) error{
		func(r int) error { return archive("", r, false, &nts) },
		func(r int) error { return archive("m", r, true, &memOnly) },
		drain(AckEach, &acking),
		drain(AckNone, &noack),
		drain(AckBatch, &ackall),
		drain(AckNone, &noackAgain),
	}
	for r := range rounds {
		for i := range runs {
			if err := runs[(i+r)%len(runs)](r); err != nil {
				return DrainFigures{}, fmt.Errorf("round %d: %w", r, err)
			}
		}
	}
	return DrainFigures{
		Msgs: n, Size: size, Rounds: rounds,
		NTS: median(nts), Acking: median(acking), NoAck: median(noack), AckAll: median(ackall),
		MemoryOnly: median(memOnly), NoAckAgain: median(noackAgain),
	}, nil
}

// median returns the middle of ds (the mean of the two middle ones when
// their number is even).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
