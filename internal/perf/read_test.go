package perf_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier/blob"
)

// readEnv is an nts replica with memory, file and S3 (gofakes3) tiers that
// archived a stream published by SeqBacklog in small blocks.
type readEnv struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	target  perf.Target
	blobURL string
	blobOpt blob.Options
	noop    *perf.Noop
}

const (
	readMsgs = 3000
	readSize = 200
)

func newReadEnv(t *testing.T) *readEnv {
	t.Helper()
	srv := testenv.RunNATS(t)
	s3 := testenv.S3Server{Endpoint: testenv.RunS3Mem(t)}
	testenv.CreateBucket(t, s3, "perf")
	e := &readEnv{
		nc:      testenv.Connect(t, srv),
		target:  perf.Target{Stream: "PERF", Size: readSize},
		blobURL: s3.URL("perf", "p"),
		blobOpt: blob.Options{AccessKey: "perf-access", SecretKey: "perf-secret"},
	}
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := perf.SeqBacklog(ctx, e.js, "PERF", readMsgs, readSize); err != nil {
		t.Fatal(err)
	}
	if e.noop, err = perf.StartNoop(testenv.Connect(t, srv)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.noop.Stop(); err != nil {
			t.Error(err)
		}
		if err := e.noop.Stop(); err != nil { // idempotent
			t.Error(err)
		}
	})
	cfg := service.Config{DataDir: t.TempDir(), Streams: []service.StreamSpec{{Name: "PERF"}}}
	cfg.NATS.URL = srv.ClientURL()
	cfg.Tiers.Blob.URL = e.blobURL
	cfg.Tiers.Blob.AccessKey, cfg.Tiers.Blob.SecretKey = e.blobOpt.AccessKey, e.blobOpt.SecretKey
	cfg.Block.TargetSize = 64 << 10
	cfg.Block.FrameSize = 4 << 10
	cfg.Block.MaxLinger = service.Duration(200 * time.Millisecond)
	cfg.Complete()
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- service.Run(rctx, cfg, log) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("service.Run: %v", err)
		}
	})
	blocks, err := perf.WaitArchived(ctx, e.nc, e.target, readMsgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 4 || blocks[0].FirstSeq != 1 || blocks[len(blocks)-1].LastSeq != readMsgs {
		t.Fatalf("archived %d blocks, seqs %d to %d; want several, 1 to %d",
			len(blocks), blocks[0].FirstSeq, blocks[len(blocks)-1].LastSeq, readMsgs)
	}
	return e
}

func (e *readEnv) place(t *testing.T, tierName string) []index.BlockMeta {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	blocks, err := perf.Place(ctx, e.nc, e.target, tierName)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if b.Tiers[0] != tierName {
			t.Fatalf("block at seq %d held by %v after Place(%s)", b.FirstSeq, b.Tiers, tierName)
		}
	}
	if err := perf.TouchBlocks(ctx, e.nc, e.target, tierName, blocks); err != nil {
		t.Fatal(err)
	}
	return blocks
}

func TestPointReads(t *testing.T) {
	e := newReadEnv(t)
	ctx := context.Background()
	// Colder, then hotter again: Place demotes and promotes.
	for _, tierName := range []string{"file", "blob", "memory"} {
		t.Run(tierName, func(t *testing.T) {
			blocks := e.place(t, tierName)
			reads, err := perf.PointReads(e.nc, e.target, tierName, blocks, 1)
			if err != nil {
				t.Fatal(err)
			}
			lat, err := perf.Measure(ctx, 2, 30, e.noop.Probe(e.nc), reads)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range lat {
				if l.N != 30 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
					t.Fatalf("probe %d: %+v", i, l)
				}
			}
			// A read served by another tier than the one asked for fails.
			other := "blob"
			if tierName == "blob" {
				other = "file"
			}
			wrong, err := perf.PointReads(e.nc, e.target, other, blocks, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := wrong(ctx); !errors.Is(err, perf.ErrCheck) {
				t.Fatalf("a read from %s checked as from %s: %v", tierName, other, err)
			}
		})
	}
	t.Run("payload of another size", func(t *testing.T) {
		blocks := e.place(t, "memory")
		bad := e.target
		bad.Size = readSize + 1
		reads, err := perf.PointReads(e.nc, bad, "memory", blocks, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := reads(ctx); !errors.Is(err, perf.ErrCheck) {
			t.Fatalf("a payload of %d bytes checked as %d: %v", readSize, bad.Size, err)
		}
	})
	t.Run("seqs not archived", func(t *testing.T) {
		past := []index.BlockMeta{{FirstSeq: readMsgs + 10, LastSeq: readMsgs + 20}}
		reads, err := perf.PointReads(e.nc, e.target, "", past, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := reads(ctx); !errors.Is(err, perf.ErrCheck) {
			t.Fatalf("read of a seq not archived: %v", err)
		}
		if _, err := perf.PointReads(e.nc, e.target, "", nil, 1); err == nil {
			t.Fatal("point reads over no blocks")
		}
	})
}

func TestRangedGets(t *testing.T) {
	e := newReadEnv(t)
	ctx := context.Background()
	blocks := e.place(t, "blob")
	for _, tc := range []struct {
		name    string
		url     string
		n       int64
		wantErr bool
	}{
		{"a frame's size", e.blobURL, 0, false},
		{"1 KiB", e.blobURL, 1024, false},
		{"longer than a block", e.blobURL, 1 << 30, true},
		{"not s3", "dir://" + filepath.ToSlash(t.TempDir()), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get, err := perf.RangedGets(ctx, tc.url, e.blobOpt, blocks, tc.n, 1)
			if tc.wantErr {
				if err == nil {
					t.Fatal("RangedGets succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lat, err := perf.Measure(ctx, 0, 10, get)
			if err != nil || lat[0].N != 10 {
				t.Fatalf("%+v, %v", lat, err)
			}
		})
	}
	t.Run("missing object", func(t *testing.T) {
		gone := []index.BlockMeta{blocks[0]}
		gone[0].Key = "PERF/none.blk"
		get, err := perf.RangedGets(ctx, e.blobURL, e.blobOpt, gone, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := get(ctx); err == nil {
			t.Fatal("GET of a missing object succeeded")
		}
	})
}

func TestRangeScanAndReplay(t *testing.T) {
	e := newReadEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.place(t, "blob")
	for _, tc := range []struct {
		name     string
		tierName string
		start    uint64
		n        int
		size     int
		wantErr  bool
	}{
		{"whole stream", "blob", 1, readMsgs, readSize, false},
		{"from the middle, headers only", "", 1234, 500, 0, false},
		{"past the end", "blob", readMsgs - 9, 20, readSize, true},
		{"another tier", "memory", 1, 10, readSize, true},
		{"another payload size", "blob", 1, 10, readSize + 8, true},
		{"nothing", "blob", 1, 0, readSize, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := e.target
			target.Size = tc.size
			took, err := perf.RangeScan(ctx, e.nc, target, tc.tierName, tc.start, tc.n)
			if (err != nil) != tc.wantErr || (err == nil && took <= 0) {
				t.Fatalf("RangeScan: %v, %v; want an error: %v", took, err, tc.wantErr)
			}
			if tc.tierName == "memory" || tc.start+uint64(tc.n) > readMsgs+1 {
				return // replay has no tiers, and waits for messages to come
			}
			took, err = perf.Replay(ctx, e.js, target, tc.start, tc.n)
			if (err != nil) != tc.wantErr || (err == nil && took <= 0) {
				t.Fatalf("Replay: %v, %v; want an error: %v", took, err, tc.wantErr)
			}
		})
	}
	t.Run("replay stops at ctx", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, err := perf.Replay(short, e.js, e.target, readMsgs-5, 20); err == nil {
			t.Fatal("Replay past the end of the stream returned")
		}
	})
}
