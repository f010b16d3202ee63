package block_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	. "github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/block/blocktest"
)

// logMsgs returns JSON log messages filling one default-size block.
func logMsgs(tb testing.TB) []Msg {
	tb.Helper()
	msgs := blocktest.JSONLogs(1, 40_000)
	b, err := NewBuilder(Options{Stream: "LOGS", Codec: CodecNone})
	if err != nil {
		tb.Fatal(err)
	}
	for i, m := range msgs {
		if b.Full() {
			return msgs[:i]
		}
		if err := b.Add(m); err != nil {
			tb.Fatal(err)
		}
	}
	return msgs
}

// encodeCases are the codecs benchmarked, with "s2-better" for
// s2.EncodeBetter, the slower and stronger S2 level that blocks do not use.
var encodeCases = []struct {
	name  string
	codec Codec
}{
	{"none", CodecNone}, {"s2", CodecS2}, {"s2-better", CodecS2}, {"zstd", CodecZstd},
}

// BenchmarkEncode seals a default-size block of JSON logs with each codec,
// reporting raw MB/s and the stored/raw ratio.
func BenchmarkEncode(b *testing.B) {
	msgs := logMsgs(b)
	for _, c := range encodeCases {
		b.Run(c.name, func(b *testing.B) {
			if c.name == "s2-better" {
				b.Cleanup(UseS2Better())
			}
			bld, err := NewBuilder(Options{Stream: "LOGS", Codec: c.codec})
			if err != nil {
				b.Fatal(err)
			}
			var meta Meta
			b.ReportAllocs()
			for b.Loop() {
				for _, m := range msgs {
					if err := bld.Add(m); err != nil {
						b.Fatal(err)
					}
				}
				if _, meta, err = bld.Seal(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(meta.RawSize)
			b.ReportMetric(float64(meta.Size)/float64(meta.RawSize), "ratio")
			b.ReportMetric(float64(len(msgs)), "msgs/block")
		})
	}
}

// BenchmarkSealRepeated fills and seals default-size blocks of one random
// 4 KiB payload over and over, the messages of the archive drain benchmark:
// S2 stores each block in about 1.2 MB. The bytes allocated a block are
// its body; a body Seal had to copy would count twice.
func BenchmarkSealRepeated(b *testing.B) {
	payload := RandomPayload(4096, 1)
	bld, err := NewBuilder(Options{Stream: "BENCH", Codec: CodecS2})
	if err != nil {
		b.Fatal(err)
	}
	var seq uint64
	SealRepeated(b, bld, payload, &seq) // the first block sizes the bodies of the next
	var meta Meta
	b.ReportAllocs()
	for b.Loop() {
		_, meta = SealRepeated(b, bld, payload, &seq)
	}
	b.SetBytes(meta.RawSize)
	b.ReportMetric(float64(meta.Size), "stored-bytes")
}

// BenchmarkSealFirst seals the first block of a new builder, as each of a
// term's builders does: with nothing sealed yet to size its body by, the
// body grows as the frames come. B/op is what that costs besides the block
// itself (stored-bytes).
func BenchmarkSealFirst(b *testing.B) {
	payload := RandomPayload(4096, 1)
	var meta Meta
	b.ReportAllocs()
	for b.Loop() {
		bld, err := NewBuilder(Options{Stream: "BENCH", Codec: CodecS2})
		if err != nil {
			b.Fatal(err)
		}
		var seq uint64
		_, meta = SealRepeated(b, bld, payload, &seq)
	}
	b.SetBytes(meta.RawSize)
	b.ReportMetric(float64(meta.Size), "stored-bytes")
}

// sealLogs seals msgs into one block with codec.
func sealLogs(tb testing.TB, msgs []Msg, codec Codec) ([]byte, Meta) {
	tb.Helper()
	bld, err := NewBuilder(Options{Stream: "LOGS", Codec: codec})
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range msgs {
		if err := bld.Add(m); err != nil {
			tb.Fatal(err)
		}
	}
	blk, meta, err := bld.Seal()
	if err != nil {
		tb.Fatal(err)
	}
	return blk, meta
}

// BenchmarkDecode opens a default-size block of JSON logs and reads every
// message with Range, reporting raw MB/s.
func BenchmarkDecode(b *testing.B) {
	msgs := logMsgs(b)
	for _, c := range encodeCases {
		if c.name == "s2-better" {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			blk, meta := sealLogs(b, msgs, c.codec)
			b.SetBytes(meta.RawSize)
			b.ReportAllocs()
			for b.Loop() {
				r, err := OpenBytes(blk)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				if err := r.Range(context.Background(), 0, 0, func(Msg) error { n++; return nil }); err != nil || n != len(msgs) {
					b.Fatalf("Range: %d messages, %v", n, err)
				}
			}
			b.ReportMetric(float64(len(msgs))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkGet reads one random message from a default-size S2 block of
// JSON logs through a ReadRangeFunc, with the Reader opened once ("cached",
// as tiers keep readers) or for each read ("cold"), reporting the bytes
// requested per read.
func BenchmarkGet(b *testing.B) {
	msgs := logMsgs(b)
	blk, meta := sealLogs(b, msgs, CodecS2)
	var read atomic.Int64
	rangeFn := func(ctx context.Context, off, n int64) ([]byte, error) {
		read.Add(n)
		return BytesRange(blk)(ctx, off, n)
	}
	ctx := context.Background()
	for _, cold := range []bool{false, true} {
		name := "cached"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			r, err := Open(ctx, meta.Size, rangeFn)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			read.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				if cold {
					if r, err = Open(ctx, meta.Size, rangeFn); err != nil {
						b.Fatal(err)
					}
				}
				seq := meta.FirstSeq + uint64(rng.IntN(meta.Count))
				if m, err := r.Get(ctx, seq); err != nil || m.Seq != seq {
					b.Fatalf("Get(%d) = %d, %v", seq, m.Seq, err)
				}
			}
			b.ReportMetric(float64(read.Load())/float64(b.N), "bytes-read/op")
		})
	}
}

// kvBlock seals n messages updating nkeys keys of a KV bucket (64-byte
// random values, every 20th a delete marker) with or without a subject
// index.
func kvBlock(tb testing.TB, n, nkeys int, subjects bool) ([]byte, Meta, []string) {
	tb.Helper()
	bld, err := NewBuilder(Options{Stream: "KV_B", Codec: CodecS2, Subjects: subjects, TargetSize: MaxTargetSize})
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("$KV.B.users.%08d.profile", rng.IntN(1<<26))
	}
	vals := make([]byte, 64*n)
	for i := range vals {
		vals[i] = byte(rng.Uint32())
	}
	for i := range n {
		val := vals[64*i : 64*i+64]
		k := keys[i%nkeys]
		if i >= nkeys {
			k = keys[rng.IntN(nkeys)]
		}
		m := Msg{Seq: uint64(i + 1), Subject: k, Data: val, Time: int64(i) * 1000}
		if i%20 == 19 {
			m.Mark, m.Data = 1, nil
		}
		if err := bld.Add(m); err != nil {
			tb.Fatal(err)
		}
	}
	blk, meta, err := bld.Seal()
	if err != nil {
		tb.Fatal(err)
	}
	return blk, meta, keys
}

// BenchmarkSubject looks up one key in the subject index of a KV block of
// 100k messages on 50k distinct keys ("hit"), a key it does not hold
// ("miss"), and checks the filter for a key ("filter"). It reports the
// subject index's share of the footer in bytes per distinct subject and the
// filter's size.
func BenchmarkSubject(b *testing.B) {
	const msgs, nkeys = 100_000, 50_000
	blk, meta, keys := kvBlock(b, msgs, nkeys, true)
	plain, _, _ := kvBlock(b, msgs, nkeys, false)
	r, err := OpenBytes(blk)
	if err != nil {
		b.Fatal(err)
	}
	rp, err := OpenBytes(plain)
	if err != nil {
		b.Fatal(err)
	}
	overhead := float64(r.FooterSize()-rp.FooterSize()) / float64(r.SubjectCount())
	for _, c := range []string{"hit", "miss", "filter"} {
		b.Run(c, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			b.ReportAllocs()
			for b.Loop() {
				k := keys[rng.IntN(len(keys))]
				switch c {
				case "hit":
					if len(r.Subject(k)) == 0 {
						b.Fatalf("%q not found", k)
					}
				case "miss":
					if r.Subject(k+"x") != nil {
						b.Fatalf("%q found", k+"x")
					}
				case "filter":
					if !FilterMayContain(meta.Filter, k) {
						b.Fatalf("filter says no to %q", k)
					}
				}
			}
			b.ReportMetric(overhead, "index-B/subject")
			b.ReportMetric(float64(len(meta.Filter)), "filter-B")
			b.ReportMetric(float64(r.FooterSize()), "footer-B")
			b.ReportMetric(float64(rp.FooterSize()), "footer-plain-B")
			b.ReportMetric(float64(meta.Size), "block-B")
		})
	}
}

// BenchmarkOpenSubjects opens the KV block of BenchmarkSubject, with and
// without its subject index, which Open checks in full.
func BenchmarkOpenSubjects(b *testing.B) {
	for _, subjects := range []bool{false, true} {
		b.Run(fmt.Sprintf("subjects=%v", subjects), func(b *testing.B) {
			blk, meta, _ := kvBlock(b, 100_000, 50_000, subjects)
			b.SetBytes(meta.RawSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := OpenBytes(blk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
