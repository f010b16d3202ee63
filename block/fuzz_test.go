package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// fuzzConfig reads past bad checksums, so that mutated footers and frames
// reach the decoders behind them, with frames bounded to keep each run
// small.
var fuzzConfig = openConfig{maxRaw: 1 << 20, skipCRC: true}

// FuzzDecode feeds arbitrary bytes to the reader: opened from bytes and
// through a ReadRangeFunc, with and without checksum verification, then
// every message read with Range and the first and last with Get. Nothing
// may panic; whatever decodes must be consistent with its footer.
func FuzzDecode(f *testing.F) {
	edge := edgeMsgs(300)
	small := append(edge[:2:2], edge[3:]...) // without the 10 KiB message
	for _, codec := range codecs {
		for _, c := range []struct {
			msgs  []Msg
			frame int
		}{
			{small[:1], 0},
			{small[:7], 0},
			{small[:12], 256},
			{small[4:40], 128},
		} {
			blk, _ := seal(f, Options{Stream: "FUZZ", Codec: codec, FrameSize: c.frame}, c.msgs)
			f.Add(blk)
			blk, _ = seal(f, Options{Stream: "FUZZ", Codec: codec, FrameSize: c.frame, Subjects: true}, c.msgs)
			f.Add(blk)
			if codec == CodecS2 {
				f.Add(blk[:len(blk)/2])
				f.Add(blk[len(blk)/2:])
				f.Add(blk[:len(blk)-1])
			}
		}
	}
	// Blocks with frames stored as is (flags bit 2): incompressible data.
	rng := rand.New(rand.NewPCG(7, 8))
	noise := make([]Msg, 12)
	for i := range noise {
		d := make([]byte, 90)
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		noise[i] = Msg{Seq: uint64(i + 10), Subject: "n", Data: d, Time: int64(i)}
	}
	for _, codec := range []Codec{CodecS2, CodecZstd} {
		blk, _ := seal(f, Options{Stream: "FUZZ", Codec: codec, FrameSize: 200}, noise)
		if r, err := OpenBytes(blk); err != nil || !r.f.rawFrames {
			f.Fatalf("%v block of noise: no frame stored as is (%v)", codec, err)
		}
		f.Add(blk)
	}
	kv, _ := kvMsgs(3, 60, 20)
	blk, _ := seal(f, Options{Stream: "KV_FUZZ", Codec: CodecNone, Subjects: true}, kv)
	f.Add(blk)
	f.Add([]byte{})
	f.Add([]byte(magic + "\x01\x00"))
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Add(append(make([]byte, 16), magic+"\x01\x00"+"\xff\xff\xff\xff\xff\xff\xff\x7f\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00"+magic...))

	f.Fuzz(func(t *testing.T, b []byte) {
		if err := Verify(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Verify: %v does not wrap ErrCorrupt", err)
		}
		for _, cfg := range []openConfig{defaultConfig, fuzzConfig} {
			if r, err := openBytes(b, cfg); err == nil {
				checkReader(t, r)
			} else if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("openBytes: %v does not wrap ErrCorrupt", err)
			}
			if r, err := open(context.Background(), int64(len(b)), bytesRange(b), cfg); err == nil {
				checkReader(t, r)
			} else if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v does not wrap ErrCorrupt", err)
			}
		}
	})
}

// checkReader reads everything from r and checks what decodes against its
// meta and its subject index; a decoding error must wrap ErrCorrupt.
func checkReader(t *testing.T, r *Reader) {
	checkSubjectIndex(t, r)
	meta := r.Meta()
	if meta.Count < 1 || meta.FirstSeq < 1 || meta.LastSeq < meta.FirstSeq || meta.FirstTime > meta.LastTime ||
		uint64(meta.Count-1) > meta.LastSeq-meta.FirstSeq || meta.Frames < 1 || meta.Frames > meta.Count {
		t.Fatalf("inconsistent meta %+v", meta)
	}
	ctx := context.Background()
	var prev uint64
	n := 0
	err := r.Range(ctx, 0, 0, func(m Msg) error {
		if m.Seq <= prev || m.Seq < meta.FirstSeq || m.Seq > meta.LastSeq || m.Time < meta.FirstTime || m.Time > meta.LastTime {
			return fmt.Errorf("message %d (seq %d, time %d) out of order or range of %+v", n, m.Seq, m.Time, meta)
		}
		prev = m.Seq
		n++
		return nil
	})
	switch {
	case err == nil && n != meta.Count:
		t.Fatalf("Range returned %d messages, meta says %d", n, meta.Count)
	case err != nil && !errors.Is(err, ErrCorrupt):
		t.Fatalf("Range: %v", err)
	}
	for _, seq := range []uint64{meta.FirstSeq, meta.LastSeq, meta.FirstSeq + (meta.LastSeq-meta.FirstSeq)/2} {
		m, err := r.Get(ctx, seq)
		switch {
		case err == nil && m.Seq != seq:
			t.Fatalf("Get(%d) returned seq %d", seq, m.Seq)
		case err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound):
			t.Fatalf("Get(%d): %v", seq, err)
		}
	}
}

// checkSubjectIndex checks that a subject index that opened lists every
// message once, in order, and that each lookup path agrees with the
// iteration.
func checkSubjectIndex(t *testing.T, r *Reader) {
	meta := r.Meta()
	if !r.HasSubjects() {
		if r.SubjectCount() != 0 || r.Filter(0) != nil {
			t.Fatal("subject answers without a subject index")
		}
		return
	}
	filter := r.Filter(0)
	n, subjects := 0, 0
	prev := ""
	for s, es := range r.Subjects("") {
		if subjects > 0 && s <= prev {
			t.Fatalf("subject %q after %q", s, prev)
		}
		prev = s
		subjects++
		if len(es) == 0 || !slices.Equal(r.Subject(s), es) || !FilterMayContain(filter, s) {
			t.Fatalf("subject %q: iterated %v, looked up %v", s, es, r.Subject(s))
		}
		for i, e := range es {
			if !r.Has(e.Seq) || (i > 0 && e.Seq <= es[i-1].Seq) {
				t.Fatalf("subject %q lists seq %d out of order or not in %+v", s, e.Seq, meta)
			}
		}
		n += len(es)
	}
	if n != meta.Count || subjects != r.SubjectCount() {
		t.Fatalf("subject index lists %d messages under %d subjects; count %d, %d subjects", n, subjects, meta.Count, r.SubjectCount())
	}
}
