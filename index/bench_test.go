package index

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
)

// benchBlocks returns n blocks of 100 sequences each with a gap of 10
// between blocks: block i holds i*110+1 .. i*110+100.
func benchBlocks(stream string, n int) []BlockMeta {
	out := make([]BlockMeta, n)
	for i := range out {
		f := uint64(i)*110 + 1
		out[i] = meta(stream, f, f+99)
	}
	return out
}

// benchSeqs returns pseudo-random sequences over n blocks: held by a block,
// or in a gap when gaps is set.
func benchSeqs(n int, gaps bool) []uint64 {
	r := rand.New(rand.NewPCG(1, 2))
	seqs := make([]uint64, 4096)
	for i := range seqs {
		off := r.Uint64N(100) + 1
		if gaps {
			off = r.Uint64N(10) + 101
		}
		seqs[i] = r.Uint64N(uint64(n))*110 + off
	}
	return seqs
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		ix := newView(benchBlocks("S", n)...)
		for _, gaps := range []bool{false, true} {
			kind := "hit"
			if gaps {
				kind = "gap"
			}
			seqs := benchSeqs(n, gaps)
			b.Run(fmt.Sprintf("blocks=%d/%s", n, kind), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, ok := ix.Lookup("S", seqs[i&4095]); ok == gaps {
						b.Fatalf("Lookup(%d) = %v", seqs[i&4095], ok)
					}
					i++
				}
			})
		}
		seqs := benchSeqs(n, false)
		b.Run(fmt.Sprintf("blocks=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(4096)
				for pb.Next() {
					if _, ok := ix.Lookup("S", seqs[i&4095]); !ok {
						b.Fatalf("Lookup(%d) missed", seqs[i&4095])
					}
					i++
				}
			})
		})
		b.Run(fmt.Sprintf("blocks=%d/time", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				t := time.Unix(int64(1e9+seqs[i&4095]), 0)
				if _, ok := ix.LookupTime("S", t); !ok {
					b.Fatalf("LookupTime missed")
				}
				i++
			}
		})
	}
	b.Run("open/blocks=1000", benchOpen)
}

// benchOpen measures Open loading 1000 block entries (and their head) from a
// real KV bucket on an embedded server.
func benchOpen(b *testing.B) {
	const n = 1000
	s := testenv.RunNATS(b)
	nc := testenv.Connect(b, s)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ix, err := Open(ctx, js, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, m := range benchBlocks("S", n) {
		val, _ := json.Marshal(&m)
		bytes += int64(len(val))
		if _, err := ix.kv.Put(ctx, blockKey("S", m.FirstSeq), val); err != nil {
			b.Fatal(err)
		}
	}
	ix.Close()
	b.SetBytes(bytes)
	b.ReportAllocs()
	var took time.Duration
	for b.Loop() {
		start := time.Now()
		ix, err := Open(ctx, js, Options{})
		took += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if got := len(ix.Blocks("S", 0, 0)); got != n {
			b.Fatalf("loaded %d blocks; want %d", got, n)
		}
		ix.Close()
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "ms/open")
	b.ReportMetric(float64(n)*float64(b.N)/took.Seconds(), "blocks/s")
}

// BenchmarkViewPut measures applying block entries to the view: in
// sequence order while following the bucket (an append each), and in random
// order while loading (sorted once at the end).
func BenchmarkViewPut(b *testing.B) {
	const n = 100_000
	blocks := benchBlocks("S", n)
	shuffled := append([]BlockMeta(nil), blocks...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, tc := range []struct {
		name   string
		blocks []BlockMeta
		load   bool
	}{{"follow-append", blocks, false}, {"load-random", shuffled, true}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ix := newView()
				if tc.load {
					ix.view.startLoad()
				}
				for _, m := range tc.blocks {
					ix.view.putBlock(m)
				}
				if tc.load {
					ix.view.finishLoad()
				}
				if got, ok := ix.Lookup("S", 5); !ok || got.FirstSeq != 1 {
					b.Fatalf("Lookup(5) = %+v, %v", got, ok)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/block")
		})
	}
}

// BenchmarkCommit measures commits of one block after another against an
// embedded server (file storage, R1), with one atomic batch and in two steps:
// by one leader, and by 8 leaders of 8 streams at once.
func BenchmarkCommit(b *testing.B) {
	for _, batch := range []bool{true, false} {
		name := "atomic"
		if !batch {
			name = "two-step"
		}
		for _, leaders := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/leaders=%d", name, leaders), func(b *testing.B) {
				s := testenv.RunNATS(b)
				ix := openReplica(b, s, Options{AtomicCommit: batch}).ix
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				var streams atomic.Int32
				b.SetParallelism((leaders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					stream := fmt.Sprintf("S%d", streams.Add(1))
					var rev uint64
					for first := uint64(1); pb.Next(); first += 100 {
						var err error
						rev, err = ix.Commit(ctx, meta(stream, first, first+99), rev, "leader", "inc")
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			})
		}
	}
}
