package index

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
)

// testCtx returns a context that ends with the test or after d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// replica is one Index with its own connection, as a replica of the service
// would have.
type replica struct {
	nc *nats.Conn
	js jetstream.JetStream
	ix *Index
}

// openReplica connects to s and opens an Index, closed when the test ends.
func openReplica(t testing.TB, s *server.Server, opts Options) *replica {
	t.Helper()
	nc := testenv.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ix, err := Open(testCtx(t, 10*time.Second), js, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := ix.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &replica{nc: nc, js: js, ix: ix}
}

// commitModes runs f once with atomic batch commits and once with two-step
// commits, each against its own server.
func commitModes(t *testing.T, f func(t *testing.T, s *server.Server, open func(testing.TB) *Index)) {
	for _, atomic := range []bool{true, false} {
		name := "atomic"
		if !atomic {
			name = "two-step"
		}
		t.Run(name, func(t *testing.T) {
			s := testenv.RunNATS(t)
			f(t, s, func(tb testing.TB) *Index {
				tb.Helper()
				ix := openReplica(tb, s, Options{AtomicCommit: atomic}).ix
				if ix.Atomic() != atomic {
					tb.Fatalf("Atomic() = %v; want %v", ix.Atomic(), atomic)
				}
				return ix
			})
		})
	}
}

// checkFor calls f every interval until it returns nil, and fails the test
// with f's last error if that takes longer than timeout.
func checkFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// meta returns a valid BlockMeta for stream holding first..last, one message
// per sequence, one second per message starting at unix time 1e9.
func meta(stream string, first, last uint64) BlockMeta {
	return BlockMeta{
		Stream:    stream,
		FirstSeq:  first,
		LastSeq:   last,
		FirstTime: int64(1e9+first) * int64(time.Second),
		LastTime:  int64(1e9+last) * int64(time.Second),
		Count:     last - first + 1,
		RawSize:   int64(last-first+1) * 100,
		Size:      int64(last-first+1) * 40,
		Frames:    1,
		Codec:     "s2",
		Checksum:  uint32(first*31 + last),
		Tiers:     []string{"memory", "file", "blob"},
		Key:       fmt.Sprintf("%s/%020d-%020d.blk", stream, first, last),
		Version:   1,
		Created:   int64(first),
	}
}

// commitChain commits blocks of n sequences each, from first, through the
// head, and returns the last head revision.
func commitChain(t testing.TB, ix *Index, stream string, first uint64, blocks, n int) uint64 {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	_, rev, err := ix.Head(ctx, stream)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	for i := range blocks {
		f := first + uint64(i*n)
		rev, err = ix.Commit(ctx, meta(stream, f, f+uint64(n)-1), rev, "leader-1", "inc-1")
		if err != nil {
			t.Fatalf("Commit %d: %v", f, err)
		}
	}
	return rev
}
