// Package perf holds the measurements nts is judged by, shared by the
// packages' go test benchmarks and `nts bench`: each figure of nts is taken
// against a plain JetStream reference measured in the same run.
package perf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/service"
)

// Backlog creates stream (subject "<stream>.data") and publishes n messages
// to it, each the same size random bytes: a frame of them compresses by
// about as many times as it holds messages. SeqBacklog publishes distinct,
// incompressible ones.
func Backlog(ctx context.Context, js jetstream.JetStream, stream string, n, size int) error {
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".data"}}); err != nil {
		return fmt.Errorf("create %s: %w", stream, err)
	}
	payload := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	subj := stream + ".data"
	for i := 0; i < n; i++ {
		if _, err := js.PublishAsync(subj, payload); err != nil {
			return err
		}
		if i%4096 == 4095 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ack is how a reference consumer acknowledges what it reads.
type Ack int

const (
	// AckEach acks every message explicitly: a plain JetStream consumer
	// doing real work.
	AckEach Ack = iota
	// AckNone acks nothing (AckNone policy): the ceiling of what a consumer
	// can read.
	AckNone
	// AckBatch acks every AckBatchSize-th message under the AckAll policy,
	// the way nts acks a block: the ceiling of an acknowledged consumer.
	AckBatch
)

// AckBatchSize is how many messages an AckBatch consumer acks at once.
const AckBatchSize = 8192

// Drain reads the first n messages of stream through a new pull consumer
// acking as ack says, and returns how long it took from the consumer's
// creation. It reads through jetstream's Consume callback, the cheapest way
// the client library offers (an iterator's Next costs more a message); nts
// speaks the pull protocol itself, with less work a message than Consume
// (see service's puller).
func Drain(ctx context.Context, js jetstream.JetStream, stream string, n int, ack Ack) (time.Duration, error) {
	cfg := jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1}
	switch ack {
	case AckNone:
		cfg.AckPolicy = jetstream.AckNonePolicy
	case AckBatch:
		cfg.AckPolicy = jetstream.AckAllPolicy
	}
	cons, err := js.CreateConsumer(ctx, stream, cfg)
	if err != nil {
		return 0, err
	}
	defer js.DeleteConsumer(context.WithoutCancel(ctx), stream, cons.CachedInfo().Name)
	start := time.Now()
	done := make(chan error, 1)
	i := 0 // messages read; the callback runs on one goroutine
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if i >= n {
			return
		}
		var err error
		switch {
		case ack == AckNone:
		case i == n-1:
			err = m.DoubleAck(ctx)
		case ack == AckEach || i%AckBatchSize == AckBatchSize-1:
			err = m.Ack()
		}
		i++
		if err != nil || i == n {
			if err != nil {
				err = fmt.Errorf("after %d messages: %w", i, err)
			}
			done <- err
			i = n
		}
	}, jetstream.PullMaxMessagesWithBytesLimit(4096, 16<<20))
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-cc.Closed():
		err = errors.New("consuming stopped")
	}
	if err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// Archive runs an nts replica over cfg (whose streams should select just
// stream) until stream's first n messages are archived, and returns how
// long that took from the moment its consumer was created, as Drain's time
// runs from its consumer's creation: the replica's own start (connecting,
// opening the index and the tiers, winning the stream's lock) is not part
// of the drain.
func Archive(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg service.Config, stream string, n int) (time.Duration, error) {
	created := make(chan time.Time, 1)
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED."+stream+".>", func(*nats.Msg) {
		select {
		case created <- time.Now():
		default:
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	ix, err := index.Open(ctx, js, index.Options{Bucket: cfg.Index.Bucket, LockTTL: time.Duration(cfg.Index.LockTTL)})
	if err != nil {
		return 0, err
	}
	defer ix.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	lvl := slog.LevelWarn
	if os.Getenv("NTS_BENCH_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	go func() { done <- service.Run(rctx, cfg, log) }()
	werr := ix.WaitFor(ctx, stream, uint64(n))
	end := time.Now()
	cancel()
	var took time.Duration
	select {
	case start := <-created:
		took = end.Sub(start)
	default:
		werr = errors.Join(werr, errors.New("no consumer-created advisory seen"))
	}
	if err := <-done; err != nil {
		return 0, errors.Join(werr, err)
	}
	if werr != nil {
		return 0, werr
	}
	return took, nil
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM),
// or 0 where /proc does not tell.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range splitLines(string(b)) {
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
