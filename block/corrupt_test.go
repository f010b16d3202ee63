package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var offsetRE = regexp.MustCompile(`at offset (\d+)`)

// corruptOffset checks err wraps ErrCorrupt and names an offset in a block of
// size bytes, and returns that offset.
func corruptOffset(t testing.TB, err error, size int) int64 {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not wrap ErrCorrupt", err)
	}
	m := offsetRE.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q names no offset", err)
	}
	off, _ := strconv.ParseInt(m[1], 10, 64)
	if off < 0 || off >= int64(size) {
		t.Fatalf("error %q names offset %d outside a block of %d bytes", err, off, size)
	}
	return off
}

// readEverything opens blk both ways and reads every message, returning the
// first error.
func readEverything(blk []byte) error {
	r, err := OpenBytes(blk)
	if err != nil {
		return err
	}
	if err := r.Range(context.Background(), 0, 0, func(Msg) error { return nil }); err != nil {
		return err
	}
	r2, err := Open(context.Background(), int64(len(blk)), bytesRange(blk))
	if err != nil {
		return err
	}
	for _, seq := range []uint64{r2.Meta().FirstSeq, r2.Meta().LastSeq} {
		if _, err := r2.Get(context.Background(), seq); err != nil {
			return err
		}
	}
	return r2.Range(context.Background(), 0, 0, func(Msg) error { return nil })
}

// bytesRange reads from b, failing on ranges outside it as a tier does.
func bytesRange(b []byte) ReadRangeFunc {
	return func(_ context.Context, off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off+n > int64(len(b)) {
			return nil, fmt.Errorf("range %d+%d outside %d bytes", off, n, len(b))
		}
		return b[off : off+n], nil
	}
}

// TestCorruptEveryByte flips each byte of small blocks in turn: every flip
// must be reported as corruption with an offset, and a flip inside a frame
// must name that frame's offset.
func TestCorruptEveryByte(t *testing.T) {
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			msgs := edgeMsgs(10)[:8]
			// S2 blocks carry a subject index, so its bytes are flipped too.
			blk, meta := seal(t, Options{Stream: "S", Codec: codec, FrameSize: 300, Subjects: codec == CodecS2}, msgs)
			if meta.Frames < 3 {
				t.Fatalf("want several frames, got %d", meta.Frames)
			}
			r := openBlock(t, blk, meta)
			for i := range blk {
				for _, mask := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(blk)
					bad[i] ^= mask
					err := readEverything(bad)
					off := corruptOffset(t, err, len(blk))
					if i >= headerSize && int64(i) < meta.Size-int64(r.footerLen)-trailerSize {
						fr := r.f.frames[r.frameAt(int64(i))]
						if off != fr.off {
							t.Fatalf("flip at %d in frame at %d: error names offset %d: %v", i, fr.off, off, err)
						}
					}
				}
			}
		})
	}
}

// frameAt returns the index of the frame holding block offset off.
func (r *Reader) frameAt(off int64) int {
	for i, fr := range r.f.frames {
		if off >= fr.off && off < fr.off+fr.stored {
			return i
		}
	}
	return -1
}

func TestCorruptTruncated(t *testing.T) {
	msgs := edgeMsgs(10)[:8]
	blk, _ := seal(t, Options{Stream: "S", Codec: CodecS2, FrameSize: 300}, msgs)
	for n := 0; n < len(blk); n++ {
		err := readEverything(blk[:n])
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
		if n > 0 {
			corruptOffset(t, err, n)
		}
	}
	for _, extra := range [][]byte{{0}, bytes.Repeat([]byte{0xff}, 100), blk[len(blk)-trailerSize:]} {
		long := append(bytes.Clone(blk), extra...)
		corruptOffset(t, readEverything(long), len(long))
		long = append(bytes.Clone(extra), blk...)
		corruptOffset(t, readEverything(long), len(long))
	}
}

// TestCorruptRegions damages whole regions of a multi-frame block read
// through a ReadRangeFunc, the way a tier serves it.
func TestCorruptRegions(t *testing.T) {
	msgs := edgeMsgs(200_000)
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2, FrameSize: 4 << 10}, msgs)
	r := openBlock(t, blk, meta)
	footerOff := meta.Size - int64(r.footerLen) - trailerSize
	mid := r.f.frames[len(r.f.frames)/2]
	cases := []struct {
		name    string
		from, n int64
		wantOff int64
	}{
		{"frame start", mid.off, 1, mid.off},
		{"frame end", mid.off + mid.stored - 1, 1, mid.off},
		{"whole frame zeroed", mid.off, mid.stored, mid.off},
		{"footer start", footerOff, 1, footerOff},
		{"footer end", footerOff + int64(r.footerLen) - 1, 1, footerOff},
		{"trailer footer offset", meta.Size - trailerSize, 1, meta.Size - trailerSize},
		{"trailer footer length", meta.Size - trailerSize + 8, 1, meta.Size - trailerSize},
		{"trailer crc", meta.Size - trailerSize + 12, 1, footerOff},
		{"trailer version", meta.Size - trailerSize + 16, 1, meta.Size - trailerSize + 16},
		{"trailer magic", meta.Size - 1, 1, meta.Size - int64(len(magic))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := bytes.Clone(blk)
			for i := c.from; i < c.from+c.n; i++ {
				if c.n > 1 {
					bad[i] = 0
				} else {
					bad[i] ^= 0x10
				}
			}
			err := readEverything(bad)
			if off := corruptOffset(t, err, len(bad)); off != c.wantOff {
				t.Fatalf("error names offset %d, want %d: %v", off, c.wantOff, err)
			}
		})
	}
	t.Run("header through OpenBytes", func(t *testing.T) {
		bad := bytes.Clone(blk)
		bad[0] ^= 1
		if _, err := OpenBytes(bad); corruptOffset(t, err, len(bad)) != 0 {
			t.Fatalf("header damage: %v", err)
		}
	})
}

// TestShortRead checks a ReadRangeFunc that returns fewer bytes than asked is
// reported as corruption, and a failing one as its own error.
func TestShortRead(t *testing.T) {
	blk, _ := seal(t, Options{Stream: "S", Codec: CodecS2}, edgeMsgs(10)[:5])
	short := func(_ context.Context, off, n int64) ([]byte, error) { return blk[off : off+n-1], nil }
	if _, err := Open(context.Background(), int64(len(blk)), short); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short read: %v, want ErrCorrupt", err)
	}
	boom := errors.New("tier unavailable")
	failing := func(context.Context, int64, int64) ([]byte, error) { return nil, boom }
	if _, err := Open(context.Background(), int64(len(blk)), failing); !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("failing read: %v, want the read's error", err)
	}
	for _, size := range []int64{-1, 0, headerSize + trailerSize - 1} {
		if _, err := Open(context.Background(), size, bytesRange(blk)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open(size %d): %v, want ErrCorrupt", size, err)
		}
	}
}

// TestOpenStable checks that OpenStable checks every frame's
// checksum when it opens the block, and trusts the frames from then on,
// while a reader of Open checks a frame at every read.
func TestOpenStable(t *testing.T) {
	msgs := edgeMsgs(10)[:8]
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2, FrameSize: 300}, msgs)
	if meta.Frames < 3 {
		t.Fatalf("want several frames, got %d", meta.Frames)
	}
	ctx := context.Background()
	src := bytes.Clone(blk)
	r := openBlock(t, blk, meta)
	for _, fr := range r.f.frames {
		src[fr.off+fr.stored/2] ^= 0x01
		if _, err := OpenStable(ctx, meta.Size, bytesRange(src)); corruptOffset(t, err, len(src)) != fr.off {
			t.Fatalf("frame at %d damaged: OpenStable: %v", fr.off, err)
		}
		src[fr.off+fr.stored/2] ^= 0x01
	}
	stable, err := OpenStable(ctx, meta.Size, bytesRange(src))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Open(ctx, meta.Size, bytesRange(src))
	if err != nil {
		t.Fatal(err)
	}
	// Damage a frame after both opened: only the plain reader checks it.
	last := r.f.frames[len(r.f.frames)-1]
	src[last.off+last.stored-1] ^= 0x01
	seq := r.f.seqAt(last.first)
	if _, err := plain.Get(ctx, seq); corruptOffset(t, err, len(src)) != last.off {
		t.Fatalf("Open's reader read a damaged frame: %v", err)
	}
	if _, err := stable.Get(ctx, seq); err != nil && strings.Contains(err.Error(), "checksum") {
		t.Fatalf("the stable reader checked a frame again: %v", err)
	}
}

// TestVerify: a sealed block verifies, and any one flipped byte, or a
// truncation, fails with ErrCorrupt without reading a message.
func TestVerify(t *testing.T) {
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2, FrameSize: 300, Subjects: true}, edgeMsgs(10)[:8])
	if meta.Frames < 3 {
		t.Fatalf("want several frames, got %d", meta.Frames)
	}
	if err := Verify(blk); err != nil {
		t.Fatal(err)
	}
	for i := range blk {
		bad := bytes.Clone(blk)
		bad[i] ^= 0x01
		if err := Verify(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d of %d: Verify = %v, want ErrCorrupt", i, len(blk), err)
		}
	}
	for _, n := range []int{0, 3, len(blk) / 2, len(blk) - 1} {
		if err := Verify(blk[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: Verify = %v, want ErrCorrupt", n, err)
		}
	}
}
