package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

var codecs = []Codec{CodecNone, CodecS2, CodecZstd}

// seal builds a block of msgs with opts and checks the builder's summary
// against the messages.
func seal(t testing.TB, opts Options, msgs []Msg) ([]byte, Meta) {
	t.Helper()
	b, err := NewBuilder(opts)
	if err != nil {
		t.Fatalf("NewBuilder: %v", err)
	}
	for _, m := range msgs {
		if err := b.Add(m); err != nil {
			t.Fatalf("Add(seq %d): %v", m.Seq, err)
		}
	}
	raw := b.RawSize()
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if meta.RawSize != raw || meta.Size != int64(len(blk)) || meta.Count != len(msgs) {
		t.Fatalf("meta %+v: want raw %d, size %d, count %d", meta, raw, len(blk), len(msgs))
	}
	if b.Len() != 0 || b.RawSize() != 0 {
		t.Fatalf("builder not reset after Seal: len %d raw %d", b.Len(), b.RawSize())
	}
	return blk, meta
}

// openBlock opens blk with OpenBytes and checks its meta equals want.
func openBlock(t testing.TB, blk []byte, want Meta) *Reader {
	t.Helper()
	r, err := OpenBytes(blk)
	if err != nil {
		t.Fatalf("OpenBytes: %v", err)
	}
	if got := r.Meta(); !sameMeta(got, want) || got.Filter != nil {
		t.Fatalf("reader meta\n got %+v\nwant %+v", got, want)
	}
	return r
}

// sameMeta reports whether a and b are equal but for Filter, which Seal
// fills and a Reader leaves nil.
func sameMeta(a, b Meta) bool {
	a.Filter, b.Filter = nil, nil
	return reflect.DeepEqual(a, b)
}

// sameMsg reports how got differs from want, or "".
func sameMsg(got, want Msg) string {
	switch {
	case got.Seq != want.Seq:
		return fmt.Sprintf("seq %d, want %d", got.Seq, want.Seq)
	case got.Subject != want.Subject:
		return fmt.Sprintf("seq %d: subject %q, want %q", want.Seq, got.Subject, want.Subject)
	case !bytes.Equal(got.Header, want.Header):
		return fmt.Sprintf("seq %d: header %q, want %q", want.Seq, got.Header, want.Header)
	case !bytes.Equal(got.Data, want.Data):
		return fmt.Sprintf("seq %d: data of %d bytes differs from want (%d bytes)", want.Seq, len(got.Data), len(want.Data))
	case got.Time != want.Time:
		return fmt.Sprintf("seq %d: time %d, want %d", want.Seq, got.Time, want.Time)
	case len(got.Header) == 0 && got.Header != nil, len(got.Data) == 0 && got.Data != nil:
		return fmt.Sprintf("seq %d: empty header or data not nil", want.Seq)
	}
	return ""
}

// rangeAll collects the messages Range returns for [from, to].
func rangeAll(t testing.TB, r *Reader, from, to uint64) []Msg {
	t.Helper()
	var got []Msg
	if err := r.Range(context.Background(), from, to, func(m Msg) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatalf("Range(%d, %d): %v", from, to, err)
	}
	return got
}

// edgeMsgs returns messages that exercise the record format: empty and nil
// parts, every byte value, odd headers, large payloads, gaps, times that go
// backwards.
func edgeMsgs(big int) []Msg {
	rng := rand.New(rand.NewPCG(1, 2))
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	large := make([]byte, big)
	for i := range large {
		large[i] = byte(rng.IntN(16)) // compressible but not trivially
	}
	msgs := []Msg{
		{Seq: 1, Subject: "a", Time: 1},
		{Seq: 2, Subject: "orders.eu.created", Header: []byte("NATS/1.0\r\nKey: a\r\nKey: b\r\nKey: a\r\n\r\n"), Data: all, Time: 1_000},
		{Seq: 5, Subject: "weird.ünïcode.>", Header: []byte("NATS/1.0 503\r\nX: \x00\xff\r\n\r\n"), Data: bytes.Repeat(all, 40), Time: 900},
		{Seq: 6, Subject: "big", Data: large, Time: 2_000},
		{Seq: 7, Subject: "empty.data", Header: []byte("NATS/1.0\r\nNats-Msg-Id: 7\r\n\r\n"), Time: -5},
		{Seq: 1 << 40, Subject: strings.Repeat("s.", 100) + "end", Data: []byte{0}, Time: 3_000},
	}
	for i := range 300 {
		seq := uint64(1<<40 + 1 + i + i/7)
		msgs = append(msgs, Msg{Seq: seq, Subject: fmt.Sprintf("sensor.%d", i%5), Data: []byte(fmt.Sprintf(`{"i":%d,"v":%d}`, i, rng.IntN(1000))), Time: 3_001 + int64(i)})
	}
	return msgs
}

func TestRoundTrip(t *testing.T) {
	for _, codec := range codecs {
		for _, frameSize := range []int{0, 1 << 10, 1} {
			t.Run(fmt.Sprintf("%s/frame=%d", codec, frameSize), func(t *testing.T) {
				msgs := edgeMsgs(1<<20 + 17)
				blk, meta := seal(t, Options{Stream: "ORDERS", Codec: codec, FrameSize: frameSize}, msgs)
				want := Meta{
					Stream: "ORDERS", FirstSeq: 1, LastSeq: msgs[len(msgs)-1].Seq, FirstTime: -5, LastTime: 3_300,
					Count: len(msgs), RawSize: meta.RawSize, Size: int64(len(blk)), Frames: meta.Frames,
					Codec: codec, Checksum: meta.Checksum, Version: FormatVersion,
				}
				if !reflect.DeepEqual(meta, want) {
					t.Fatalf("meta\n got %+v\nwant %+v", meta, want)
				}
				if frameSize == 1 && meta.Frames != len(msgs) {
					t.Fatalf("frame size 1: %d frames for %d messages", meta.Frames, len(msgs))
				}
				r := openBlock(t, blk, meta)
				ctx := context.Background()
				for _, m := range msgs {
					got, err := r.Get(ctx, m.Seq)
					if err != nil {
						t.Fatalf("Get(%d): %v", m.Seq, err)
					}
					if d := sameMsg(got, m); d != "" {
						t.Fatalf("Get: %s", d)
					}
				}
				got := rangeAll(t, r, 0, 0)
				if len(got) != len(msgs) {
					t.Fatalf("Range: %d messages, want %d", len(got), len(msgs))
				}
				for i := range got {
					if d := sameMsg(got[i], msgs[i]); d != "" {
						t.Fatalf("Range: %s", d)
					}
				}
			})
		}
	}
}

func TestSingleMessage(t *testing.T) {
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			m := Msg{Seq: 42, Subject: "one", Data: []byte("only"), Time: 1_700_000_000_000_000_000}
			blk, meta := seal(t, Options{Stream: "S", Codec: codec}, []Msg{m})
			if meta.FirstSeq != 42 || meta.LastSeq != 42 || meta.FirstTime != m.Time || meta.LastTime != m.Time || meta.Frames != 1 {
				t.Fatalf("meta %+v", meta)
			}
			r := openBlock(t, blk, meta)
			got, err := r.Get(context.Background(), 42)
			if err != nil {
				t.Fatal(err)
			}
			if d := sameMsg(got, m); d != "" {
				t.Fatal(d)
			}
			for _, seq := range []uint64{0, 41, 43} {
				if _, err := r.Get(context.Background(), seq); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(%d): %v, want ErrNotFound", seq, err)
				}
			}
		})
	}
}

func TestGetNotFound(t *testing.T) {
	msgs := edgeMsgs(100)
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2, FrameSize: 512}, msgs)
	r := openBlock(t, blk, meta)
	held := make(map[uint64]bool)
	for _, m := range msgs {
		held[m.Seq] = true
	}
	var probes []uint64
	for seq := uint64(0); seq <= 10; seq++ {
		probes = append(probes, seq)
	}
	for seq := meta.LastSeq - 40; seq <= meta.LastSeq+3; seq++ {
		probes = append(probes, seq)
	}
	probes = append(probes, 1<<39, ^uint64(0))
	for _, seq := range probes {
		m, err := r.Get(context.Background(), seq)
		if held[seq] {
			if err != nil || m.Seq != seq {
				t.Fatalf("Get(%d) = seq %d, %v", seq, m.Seq, err)
			}
			if !r.Has(seq) {
				t.Fatalf("Has(%d) = false", seq)
			}
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%d): %v, want ErrNotFound", seq, err)
		}
		if r.Has(seq) {
			t.Fatalf("Has(%d) = true", seq)
		}
	}
}

func TestRangeBounds(t *testing.T) {
	msgs := edgeMsgs(100)
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecZstd, FrameSize: 600}, msgs)
	r := openBlock(t, blk, meta)
	last := meta.LastSeq
	want := func(from, to uint64) []uint64 {
		if to == 0 {
			to = ^uint64(0)
		}
		var seqs []uint64
		for _, m := range msgs {
			if m.Seq >= from && m.Seq <= to {
				seqs = append(seqs, m.Seq)
			}
		}
		return seqs
	}
	cases := []struct {
		name     string
		from, to uint64
	}{
		{"all", 0, 0},
		{"from first", 1, 0},
		{"to last", 0, last},
		{"one", 5, 5},
		{"gap only", 3, 4},
		{"starts in gap", 3, 6},
		{"middle", 1<<40 + 50, 1<<40 + 120},
		{"ends in gap", 1<<40 + 1, 1<<40 + 8},
		{"past the end", last + 1, 0},
		{"to past the end", last - 10, last + 100},
		{"inverted", 7, 6},
		{"between", 8, 1 << 39},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := rangeAll(t, r, c.from, c.to)
			w := want(c.from, c.to)
			if len(got) != len(w) {
				t.Fatalf("%d messages, want %d", len(got), len(w))
			}
			for i := range got {
				if got[i].Seq != w[i] {
					t.Fatalf("message %d: seq %d, want %d", i, got[i].Seq, w[i])
				}
			}
		})
	}
}

func TestRangeStops(t *testing.T) {
	msgs := edgeMsgs(100)
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2, FrameSize: 256}, msgs)
	r := openBlock(t, blk, meta)
	stop := errors.New("stop")
	n := 0
	err := r.Range(context.Background(), 0, 0, func(Msg) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if err != stop || n != 10 {
		t.Fatalf("Range returned %v after %d messages, want stop after 10", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = r.Range(ctx, 0, 0, func(Msg) error {
		n++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= len(msgs) {
		t.Fatalf("Range after cancel: %v after %d messages", err, n)
	}
}

// TestMsgOwnership checks that messages returned by Get and Range may be
// kept and modified: they share nothing with the block or with each other.
func TestMsgOwnership(t *testing.T) {
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			msgs := edgeMsgs(100)
			blk, meta := seal(t, Options{Stream: "S", Codec: codec}, msgs)
			orig := bytes.Clone(blk)
			r := openBlock(t, blk, meta)
			ctx := context.Background()
			m1, err := r.Get(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			m1.Header = append(m1.Header, "Extra: 1\r\n"...)
			for i := range m1.Data {
				m1.Data[i] = 0xAA
			}
			all := rangeAll(t, r, 0, 0)
			for _, m := range all {
				m.Header = append(m.Header, 'x')
				for i := range m.Data {
					m.Data[i] ^= 0xFF
				}
			}
			if !bytes.Equal(blk, orig) {
				t.Fatal("modifying returned messages changed the block")
			}
			for _, m := range msgs {
				got, err := r.Get(ctx, m.Seq)
				if err != nil {
					t.Fatal(err)
				}
				if d := sameMsg(got, m); d != "" {
					t.Fatalf("after modifying earlier results: %s", d)
				}
			}
		})
	}
}

func TestSeqForTime(t *testing.T) {
	msgs := edgeMsgs(10) // times: 1, 1000, 900, 2000, -5, 3000, 3001...
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2}, msgs)
	r := openBlock(t, blk, meta)
	sorted := msgs[5:] // times 3000, 3001, ...
	blk2, meta2 := seal(t, Options{Stream: "S", Codec: CodecS2}, sorted)
	r2 := openBlock(t, blk2, meta2)
	cases := []struct {
		name string
		r    *Reader
		t    int64
		seq  uint64
		ok   bool
	}{
		{"unsorted before all", r, -100, 1, true},
		{"unsorted exact", r, 1000, 2, true},
		{"unsorted between", r, 950, 2, true},
		{"unsorted late", r, 2500, 1 << 40, true},
		{"unsorted after all", r, 1 << 50, 0, false},
		{"sorted first", r2, 0, 1 << 40, true},
		{"sorted middle", r2, 3_100, msgs[5+100].Seq, true},
		{"sorted last", r2, 3_300, meta2.LastSeq, true},
		{"sorted after", r2, 3_301, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seq, ok := c.r.SeqForTime(c.t)
			if seq != c.seq || ok != c.ok {
				t.Fatalf("SeqForTime(%d) = %d, %v; want %d, %v", c.t, seq, ok, c.seq, c.ok)
			}
		})
	}
}

func TestLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates several hundred MiB")
	}
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			data := make([]byte, 64<<20+1000)
			for i := range data {
				data[i] = byte(i * 7 / 5)
			}
			msgs := []Msg{
				{Seq: 1, Subject: "small", Data: []byte("before"), Time: 1},
				{Seq: 2, Subject: "huge", Header: []byte("NATS/1.0\r\nK: v\r\n\r\n"), Data: data, Time: 2},
				{Seq: 3, Subject: "small", Data: []byte("after"), Time: 3},
			}
			blk, meta := seal(t, Options{Stream: "S", Codec: codec}, msgs)
			if meta.Frames != 3 {
				t.Fatalf("%d frames, want 3 (the huge message in its own)", meta.Frames)
			}
			r := openBlock(t, blk, meta)
			for _, m := range msgs {
				got, err := r.Get(context.Background(), m.Seq)
				if err != nil {
					t.Fatal(err)
				}
				if d := sameMsg(got, m); d != "" {
					t.Fatal(d)
				}
			}
		})
	}
}

func TestBuilderErrors(t *testing.T) {
	b, err := NewBuilder(Options{Stream: "S", Codec: CodecS2})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Seal(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Seal of empty builder: %v, want ErrEmpty", err)
	}
	if err := b.Add(Msg{Seq: 0, Subject: "x"}); !errors.Is(err, ErrOrder) {
		t.Fatalf("Add(seq 0): %v, want ErrOrder", err)
	}
	if err := b.Add(Msg{Seq: 10, Subject: "x", Time: 7}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{10, 9, 0} {
		if err := b.Add(Msg{Seq: seq, Subject: "x"}); !errors.Is(err, ErrOrder) {
			t.Fatalf("Add(seq %d) after 10: %v, want ErrOrder", seq, err)
		}
	}
	big := Msg{Seq: 11, Subject: "x", Data: make([]byte, MaxMsgSize)}
	if err := b.Add(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Add(too large): %v, want ErrTooLarge", err)
	}
	if b.Len() != 1 || b.FirstSeq() != 10 || b.LastSeq() != 10 || b.FirstTime() != 7 {
		t.Fatalf("after rejected adds: len %d, seqs %d-%d, first time %d; want 1, 10-10, 7", b.Len(), b.FirstSeq(), b.LastSeq(), b.FirstTime())
	}
	b.Reset()
	if b.Len() != 0 || b.FirstSeq() != 0 || b.LastSeq() != 0 || b.RawSize() != 0 || b.FirstTime() != 0 {
		t.Fatal("Reset left messages")
	}
	if err := b.Add(Msg{Seq: 1, Subject: "x"}); err != nil {
		t.Fatalf("Add after Reset: %v", err)
	}
}

func TestBuilderOptions(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", Options{Stream: "S"}, true},
		{"empty stream", Options{}, false},
		{"long stream", Options{Stream: strings.Repeat("s", 256)}, false},
		{"max stream", Options{Stream: strings.Repeat("s", 255)}, true},
		{"bad codec", Options{Stream: "S", Codec: 3}, false},
		{"negative target", Options{Stream: "S", TargetSize: -1}, false},
		{"huge target", Options{Stream: "S", TargetSize: MaxTargetSize + 1}, false},
		{"negative frame", Options{Stream: "S", FrameSize: -1}, false},
		{"huge frame", Options{Stream: "S", FrameSize: MaxMsgSize + 1}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := NewBuilder(c.opts)
			if !c.ok {
				if !errors.Is(err, ErrInvalidOption) {
					t.Fatalf("NewBuilder: %v, want ErrInvalidOption", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o := b.Options(); c.opts.TargetSize == 0 && (o.TargetSize != DefaultTargetSize || o.FrameSize != DefaultFrameSize) {
				t.Fatalf("defaults not applied: %+v", o)
			}
		})
	}
}

func TestFull(t *testing.T) {
	b, err := NewBuilder(Options{Stream: "S", Codec: CodecS2, TargetSize: 1000, FrameSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	for !b.Full() {
		seq++
		if err := b.Add(Msg{Seq: seq, Subject: "a.b", Data: bytes.Repeat([]byte{'x'}, 95)}); err != nil {
			t.Fatal(err)
		}
	}
	// Each record: 2 length varints + 3 + 95 = 100 bytes.
	if seq != 10 || b.RawSize() != 1000 {
		t.Fatalf("full after %d messages, raw %d; want 10, 1000", seq, b.RawSize())
	}
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	if meta.Frames != 4 { // 300-byte frames of 3 records, then 1
		t.Fatalf("%d frames, want 4", meta.Frames)
	}
	// The builder is reused: the next block starts afresh.
	if err := b.Add(Msg{Seq: 11, Subject: "a.b"}); err != nil {
		t.Fatal(err)
	}
	blk2, meta2, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	if meta2.FirstSeq != 11 || meta2.Count != 1 || meta2.Frames != 1 {
		t.Fatalf("second block meta %+v", meta2)
	}
	r := openBlock(t, blk, meta)
	if got := rangeAll(t, r, 0, 0); len(got) != 10 || got[9].Seq != 10 {
		t.Fatalf("first block after reuse: %d messages", len(got))
	}
	openBlock(t, blk2, meta2)
}

func TestParseCodec(t *testing.T) {
	cases := []struct {
		in   string
		want Codec
		ok   bool
	}{
		{"", CodecS2, true}, {"s2", CodecS2, true}, {"none", CodecNone, true}, {"zstd", CodecZstd, true},
		{"lz4", 0, false}, {"S2", 0, false},
	}
	for _, c := range cases {
		got, err := ParseCodec(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Fatalf("ParseCodec(%q) = %v, %v", c.in, got, err)
		}
		if !c.ok && !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("ParseCodec(%q): %v, want ErrInvalidOption", c.in, err)
		}
		if c.ok && c.in != "" && got.String() != c.in {
			t.Fatalf("%v.String() = %q", got, got.String())
		}
	}
	if s := Codec(9).String(); s != "codec(9)" {
		t.Fatalf("Codec(9).String() = %q", s)
	}
}

// TestRawFrames checks that a compressed block stores the frames its codec
// cannot shrink as they are, sets flags bit 2 only then, and reads them
// back exactly, through Get and Range, with Open and OpenStable, without
// handing out the block's own bytes; and that a damaged raw frame is
// corrupt.
func TestRawFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var msgs []Msg
	for i := range 64 {
		data := make([]byte, 1000)
		if i/8%2 == 0 { // eight incompressible messages, then eight that compress
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		} else {
			copy(data, bytes.Repeat([]byte("compressible "), 100))
		}
		msgs = append(msgs, Msg{Seq: uint64(i + 1), Subject: "s", Data: data, Time: int64(i)})
	}
	ctx := context.Background()
	for _, codec := range []Codec{CodecS2, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			for _, tc := range []struct {
				name      string
				msgs      []Msg
				raw, comp bool // frames stored as is, compressed frames
			}{
				{"mixed", msgs, true, true},
				{"compressible", msgs[8:16], false, true},
				{"incompressible", msgs[:8], true, false},
			} {
				blk, meta := seal(t, Options{Stream: "S", Codec: codec, FrameSize: 8 * 1024}, tc.msgs)
				orig := bytes.Clone(blk)
				r := openBlock(t, blk, meta)
				var raw, comp bool
				for _, fr := range r.f.frames {
					if fr.stored == int64(fr.raw) {
						raw = true
					} else {
						comp = true
					}
				}
				if raw != tc.raw || comp != tc.comp || r.f.rawFrames != tc.raw {
					t.Fatalf("%s: raw frames %v, compressed %v, flag %v", tc.name, raw, comp, r.f.rawFrames)
				}
				stable, err := OpenStable(ctx, meta.Size, bytesRange(blk))
				if err != nil {
					t.Fatal(err)
				}
				for _, rd := range []*Reader{r, stable} {
					for _, m := range tc.msgs {
						got, err := rd.Get(ctx, m.Seq)
						if err != nil {
							t.Fatal(err)
						}
						if d := sameMsg(got, m); d != "" {
							t.Fatalf("%s: Get: %s", tc.name, d)
						}
						for i := range got.Data {
							got.Data[i] ^= 0xff
						}
					}
					for i, got := range rangeAll(t, rd, 0, 0) {
						if d := sameMsg(got, tc.msgs[i]); d != "" {
							t.Fatalf("%s: Range: %s", tc.name, d)
						}
						for i := range got.Data {
							got.Data[i] ^= 0xff
						}
					}
				}
				if !bytes.Equal(blk, orig) {
					t.Fatalf("%s: modifying returned messages changed the block", tc.name)
				}
				if !tc.raw {
					continue
				}
				for _, fr := range r.f.frames {
					if fr.stored != int64(fr.raw) {
						continue
					}
					bad := bytes.Clone(blk)
					bad[fr.off+fr.stored/2] ^= 0x10
					br, err := Open(ctx, meta.Size, bytesRange(bad))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := br.Get(ctx, r.f.seqAt(fr.first)); corruptOffset(t, err, len(bad)) != fr.off {
						t.Fatalf("damaged raw frame at %d: %v", fr.off, err)
					}
				}
			}
		})
	}
}

// TestSealOwnership checks that a sealed block is the caller's, with little
// spare capacity for a tier to keep, that the builder keeps no block-sized
// buffer once it sealed, and that the blocks it seals after one is handed
// out neither share nor change it.
func TestSealOwnership(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			b, err := NewBuilder(Options{Stream: "S", Codec: codec, TargetSize: 256 << 10, FrameSize: 8 << 10})
			if err != nil {
				t.Fatal(err)
			}
			var blocks [][]byte
			var copies [][]byte
			seq := uint64(1)
			for range 4 {
				for !b.Full() {
					off := int(seq*977) % (len(data) - 1000)
					if err := b.Add(Msg{Seq: seq, Subject: "s", Data: data[off : off+1000], Time: int64(seq)}); err != nil {
						t.Fatal(err)
					}
					seq++
				}
				blk, _, err := b.Seal()
				if err != nil {
					t.Fatal(err)
				}
				if b.body != nil {
					t.Fatal("the builder kept its body after Seal")
				}
				if spare := cap(blk) - len(blk); spare > len(blk)/maxSlack {
					t.Errorf("block of %d bytes with %d spare", len(blk), spare)
				}
				blocks = append(blocks, blk)
				copies = append(copies, bytes.Clone(blk))
			}
			for i, blk := range blocks {
				if !bytes.Equal(blk, copies[i]) {
					t.Fatalf("block %d changed after later seals", i)
				}
				if _, err := OpenBytes(blk); err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
			}
		})
	}
}

// TestSealBodyAllocs: the first block of a builder, whose body grows as its
// frames come, allocates not much more than itself: its body is sized from
// how well its first frames compressed, not doubled frame after frame and
// then copied at Seal. Nor does a block the size of the last one sealed
// allocate much more than itself.
func TestSealBodyAllocs(t *testing.T) {
	payload := randomPayload(4096, 11)
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			if raceEnabled && codec != CodecNone {
				t.Skip("the race detector drops the codec's pooled scratch, which then counts as allocated")
			}
			// The codec's own first use (zstd's encoder state) is not
			// the builder's.
			warm, err := NewBuilder(Options{Stream: "S", Codec: codec, TargetSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			var seq uint64
			sealRepeated(t, warm, payload, &seq)
			b, err := NewBuilder(Options{Stream: "S", Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			for i, what := range []string{"first block", "block the size of the last"} {
				seq = 0
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				blk, _ := sealRepeated(t, b, payload, &seq)
				runtime.ReadMemStats(&after)
				size := len(blk)
				// Besides the block: the open frame, the builder's
				// per-message slices (about 20 bytes a message) on the
				// first block, the codec's scratch.
				limit := uint64(size) + uint64(size)/4
				if i == 0 {
					limit = uint64(size) + uint64(size)/2 + uint64(seq)*32
				}
				alloc := after.TotalAlloc - before.TotalAlloc
				if alloc > limit {
					t.Errorf("%s of %d bytes (%d messages) allocated %d bytes, want at most %d", what, size, seq, alloc, limit)
				}
			}
		})
	}
}

// randomPayload returns n random bytes drawn from seed.
func randomPayload(n int, seed uint64) []byte {
	payload := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	return payload
}

// sealRepeated fills b with messages of payload, numbered on from *seq,
// until it is full, and seals it.
func sealRepeated(tb testing.TB, b *Builder, payload []byte, seq *uint64) ([]byte, Meta) {
	tb.Helper()
	for !b.Full() {
		*seq++
		if err := b.Add(Msg{Seq: *seq, Subject: "BENCH.data", Data: payload, Time: int64(*seq)}); err != nil {
			tb.Fatal(err)
		}
	}
	blk, meta, err := b.Seal()
	if err != nil {
		tb.Fatal(err)
	}
	return blk, meta
}
