package block

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Codec is the compression applied to each frame of a block. Its value is
// stored in the footer and is part of the durable format.
type Codec uint8

// The codecs. Their values are part of the durable format.
const (
	// CodecNone stores frames as they are.
	CodecNone Codec = 0
	// CodecS2 compresses each frame as one S2 block (the default).
	CodecS2 Codec = 1
	// CodecZstd compresses each frame as one zstd frame at the default
	// level, in a single segment (the frame header holds its content size).
	CodecZstd Codec = 2
)

// ParseCodec returns the codec named s: "none", "s2" or "zstd". The empty
// string names the default, S2.
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "", "s2":
		return CodecS2, nil
	case "none":
		return CodecNone, nil
	case "zstd":
		return CodecZstd, nil
	}
	return 0, fmt.Errorf("%w: unknown codec %q (want none, s2 or zstd)", ErrInvalidOption, s)
}

// String returns the codec's name as ParseCodec accepts it.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecS2:
		return "s2"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

func (c Codec) valid() bool { return c <= CodecZstd }

// The zstd encoder and decoder are shared by every builder and reader: both
// are safe for concurrent use through EncodeAll and DecodeAll, and run up to
// GOMAXPROCS operations at once. They are made on first use.
var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdCoders() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		n := runtime.GOMAXPROCS(0)
		zstdEnc, zstdErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(n),
			zstd.WithEncoderCRC(false),   // frames carry a CRC-32C in the footer
			zstd.WithSingleSegment(true), // always write the content size
		)
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(n),
			zstd.WithDecoderMaxMemory(MaxMsgSize),
			zstd.WithDecodeAllCapLimit(true),
		)
	})
	return zstdEnc, zstdDec, zstdErr
}

// s2Encode is the S2 encoder blocks use: s2.Encode, S2's default level. On
// JSON logs (BenchmarkEncode) it stores about 25% of the raw bytes at about
// 850 MB/s on one core; s2.EncodeBetter stores 24% at 500 MB/s, which is
// not worth 1.7 times the ingest CPU. zstd is there for a better ratio.
var s2Encode = s2.Encode

// compress appends src compressed with c to dst and returns the result.
func compress(c Codec, dst, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecS2:
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return nil, fmt.Errorf("%w: frame of %d bytes", ErrTooLarge, len(src))
		}
		dst = grow(dst, n)
		out := s2Encode(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(out)], nil
	case CodecZstd:
		enc, _, err := zstdCoders()
		if err != nil {
			return nil, fmt.Errorf("block: zstd encoder: %w", err)
		}
		return enc.EncodeAll(src, dst), nil
	}
	return nil, fmt.Errorf("%w: unknown codec %d", ErrInvalidOption, c)
}

// decompress decodes the stored frame src, found at offset off in the block,
// into dst, which it reuses when its capacity is at least rawLen. It returns
// an error wrapping ErrCorrupt unless the frame decodes to exactly rawLen
// bytes. rawLen has been checked against the reader's bound by the caller,
// and the frame must declare that length before anything is allocated.
func decompress(c Codec, dst, src []byte, rawLen int, off int64) ([]byte, error) {
	switch c {
	case CodecNone:
		if len(src) != rawLen {
			return nil, corruptf(off, "stored frame of %d bytes, want raw length %d", len(src), rawLen)
		}
		return append(sized(dst, rawLen), src...), nil
	case CodecS2:
		n, err := s2.DecodedLen(src)
		if err != nil || n != rawLen {
			return nil, corruptf(off, "s2 frame decodes to %d bytes, want %d (%v)", n, rawLen, err)
		}
		out, err := s2.Decode(sized(dst, rawLen)[:rawLen], src)
		if err != nil {
			return nil, corruptf(off, "s2 frame: %v", err)
		}
		return out, nil
	case CodecZstd:
		_, dec, err := zstdCoders()
		if err != nil {
			return nil, fmt.Errorf("block: zstd decoder: %w", err)
		}
		var h zstd.Header
		if err := h.Decode(src); err != nil || !h.HasFCS || h.FrameContentSize != uint64(rawLen) {
			return nil, corruptf(off, "zstd frame header declares %d bytes, want %d (%v)", h.FrameContentSize, rawLen, err)
		}
		// The decoder is limited to dst's capacity (WithDecodeAllCapLimit).
		out, err := dec.DecodeAll(src, sized(dst, rawLen)[:0:rawLen])
		if err != nil {
			return nil, corruptf(off, "zstd frame: %v", err)
		}
		if len(out) != rawLen {
			return nil, corruptf(off, "zstd frame decodes to %d bytes, want %d", len(out), rawLen)
		}
		return out, nil
	}
	return nil, corruptf(off, "unknown codec %d", c)
}

// sized returns dst emptied, or a new slice if its capacity is below n.
func sized(dst []byte, n int) []byte {
	if cap(dst) < n {
		return make([]byte, 0, n)
	}
	return dst[:0]
}

// grow returns b with room for at least n more bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), 2*cap(b)+n)
	copy(nb, b)
	return nb
}
