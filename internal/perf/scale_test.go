package perf_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier"
)

// replica is an nts replica on an embedded server, serving streams, with
// a requester connection.
type replica struct {
	cfg service.Config
	nc  *nats.Conn
	js  jetstream.JetStream
}

// startReplica runs a replica (memory, file and dir:// blob tiers) for the
// test, archiving streams, and stops it when the test ends.
func startReplica(tb testing.TB, streams ...string) *replica {
	tb.Helper()
	srv := testenv.RunNATS(tb)
	r := &replica{nc: testenv.Connect(tb, srv)}
	var err error
	if r.js, err = jetstream.New(r.nc); err != nil {
		tb.Fatal(err)
	}
	r.cfg = service.Config{DataDir: tb.TempDir()}
	r.cfg.NATS.URL = srv.ClientURL()
	r.cfg.Block.MaxLinger = service.Duration(20 * time.Millisecond)
	for _, s := range streams {
		r.cfg.Streams = append(r.cfg.Streams, service.StreamSpec{Name: s})
	}
	r.cfg.Complete()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, r.cfg, slog.New(slog.DiscardHandler)) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("service.Run: %v", err)
		}
	})
	return r
}

// TestCommitSynthetic commits synthetic archives and reads them back
// through the replica: every block in the index and in the file tier,
// every message the one PointReads expects, a seq past the end a 404 that
// reads no tier; and a second commit of the same archive is refused.
func TestCommitSynthetic(t *testing.T) {
	r := startReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, syn := range []perf.Synthetic{
		{Stream: "ONE", Blocks: 1, MsgsPerBlock: 1, Size: 8},
		{Stream: "MANY", Blocks: 37, MsgsPerBlock: 3, Size: 100},
	} {
		t.Run(syn.Stream, func(t *testing.T) {
			blocks, err := perf.CommitSynthetic(ctx, r.js, r.cfg.Index.Bucket, r.cfg.Tiers.File.Dir, syn)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != syn.Blocks {
				t.Fatalf("%d blocks, want %d", len(blocks), syn.Blocks)
			}
			for i, b := range blocks {
				first := uint64(i*syn.MsgsPerBlock + 1)
				if b.FirstSeq != first || b.LastSeq != first+uint64(syn.MsgsPerBlock)-1 || len(b.Tiers) != 1 || b.Tiers[0] != "file" {
					t.Fatalf("block %d: %+v", i, b)
				}
			}
			target := perf.Target{Stream: syn.Stream, Size: syn.Size}
			if n, err := perf.WaitBlocks(ctx, r.nc, target, syn.Blocks); err != nil || n != syn.Blocks {
				t.Fatalf("WaitBlocks = %d, %v", n, err)
			}
			listed, err := perf.Blocks(ctx, r.nc, target)
			if err != nil || len(listed) != len(blocks) || listed[len(listed)-1].Key != blocks[len(blocks)-1].Key {
				t.Fatalf("the replica lists %d blocks (%v)", len(listed), err)
			}
			ft, err := tier.NewFile(r.cfg.Tiers.File.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if info, err := ft.Stat(ctx, blocks[0].Key); err != nil || info.Size != blocks[0].Size {
				t.Fatalf("file tier: %+v, %v; want %d bytes", info, err, blocks[0].Size)
			}
			if err := perf.TouchBlocks(ctx, r.nc, target, "file", blocks); err != nil {
				t.Fatal(err)
			}
			read, err := perf.PointReads(r.nc, target, "file", blocks, 1)
			if err != nil {
				t.Fatal(err)
			}
			last := blocks[len(blocks)-1].LastSeq
			for _, tc := range []struct {
				probe perf.Probe
				read  bool
			}{{read, true}, {perf.NotArchived(r.nc, target, last+1), false}} {
				_, before, err := perf.TierReads(ctx, r.nc, "")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := perf.Measure(ctx, 0, 20, tc.probe); err != nil {
					t.Fatal(err)
				}
				_, after, err := perf.TierReads(ctx, r.nc, "")
				if err != nil {
					t.Fatal(err)
				}
				if (after > before) != tc.read {
					t.Errorf("20 requests (reading archived messages: %v) made %d tier reads", tc.read, after-before)
				}
			}
			if err := perf.NotArchived(r.nc, target, last)(ctx); !errors.Is(err, perf.ErrCheck) || !strings.Contains(err.Error(), "want 404") {
				t.Errorf("NotArchived of an archived seq: %v", err)
			}
			if _, err := perf.CommitSynthetic(ctx, r.js, r.cfg.Index.Bucket, r.cfg.Tiers.File.Dir, syn); err == nil || !strings.Contains(err.Error(), "not new") {
				t.Errorf("committing %s again: %v", syn.Stream, err)
			}
		})
	}
}

func TestCommitSyntheticRefuses(t *testing.T) {
	srv := testenv.RunNATS(t)
	js, err := jetstream.New(testenv.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, syn := range []perf.Synthetic{
		{Stream: "S", Blocks: 0, MsgsPerBlock: 1, Size: 8},
		{Stream: "S", Blocks: 1, MsgsPerBlock: 0, Size: 8},
		{Stream: "a.b", Blocks: 1, MsgsPerBlock: 1, Size: 8},
	} {
		t.Run(fmt.Sprintf("%s/%dx%d", syn.Stream, syn.Blocks, syn.MsgsPerBlock), func(t *testing.T) {
			if _, err := perf.CommitSynthetic(ctx, js, "idx", t.TempDir(), syn); err == nil {
				t.Fatal("CommitSynthetic succeeded")
			}
		})
	}
}

func TestSpread(t *testing.T) {
	blocks := make([]index.BlockMeta, 100)
	for i := range blocks {
		blocks[i].FirstSeq = uint64(i)
	}
	for _, tc := range []struct {
		n     int
		first []uint64
	}{
		{10, []uint64{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}},
		{3, []uint64{0, 33, 66}},
		{100, nil},
		{500, nil},
	} {
		got := perf.Spread(blocks, tc.n)
		if tc.first == nil {
			if len(got) != len(blocks) {
				t.Errorf("Spread(100 blocks, %d) = %d blocks", tc.n, len(got))
			}
			continue
		}
		var seqs []uint64
		for _, b := range got {
			seqs = append(seqs, b.FirstSeq)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(tc.first) {
			t.Errorf("Spread(100 blocks, %d) = %v, want %v", tc.n, seqs, tc.first)
		}
	}
}
