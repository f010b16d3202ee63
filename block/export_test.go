package block

import "github.com/klauspost/compress/s2"

// Exports for the tests of package block_test, which use package blocktest
// (and so cannot be in package block).

const TailSize = tailSize

var (
	SameMsg       = sameMsg
	BytesRange    = bytesRange
	RandomPayload = randomPayload
	SealRepeated  = sealRepeated
)

// FrameOf returns the offset and stored length of the frame holding seq.
func (r *Reader) FrameOf(seq uint64) (off, stored int64) {
	i, ok := r.index(seq)
	if !ok {
		return -1, -1
	}
	fr := r.f.frames[r.frameOf(i)]
	return fr.off, fr.stored
}

// MaxFrameStored returns the stored length of the largest frame.
func (r *Reader) MaxFrameStored() int64 {
	n := int64(0)
	for _, fr := range r.f.frames {
		n = max(n, fr.stored)
	}
	return n
}

// UseS2Better makes builders compress with s2.EncodeBetter instead of
// s2.Encode until the returned func is called; benchmarks compare the two.
func UseS2Better() (restore func()) {
	prev := s2Encode
	s2Encode = s2.EncodeBetter
	return func() { s2Encode = prev }
}
