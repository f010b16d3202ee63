package block

import (
	"math"
	"math/bits"
)

// A filter is a Bloom filter over the distinct subjects of a block. A
// builder with Options.Subjects makes one at Seal (Meta.Filter), sized to
// the block, so that an index of blocks can tell, without reading a block,
// that it holds no message on a subject. It answers "maybe" for every
// subject the block holds and "no" for most others; it cannot answer for a
// prefix or a wildcard.
//
// Filters are kept in index entries beside blocks, so their layout is part
// of the durable format:
//
//	kind    byte     1: the Bloom filter below
//	probes  byte     bits set per subject, 1..maxProbes
//	bits    [n]byte  m = 8n bits, n >= 1; bit j is bit j%8 of byte j/8
//
// A subject s sets or tests the bits (h + i*d) mod m for i in [0, probes),
// where h = fmix64(FNV-1a 64(s)) (FNV-1a as hash/fnv computes it, then
// MurmurHash3's 64-bit finaliser to spread its bits), d = h rotated left by
// 32 bits, with its lowest bit set, and the arithmetic is on uint64 with
// wrap-around.
const (
	// filterKind is the first byte of a filter.
	filterKind = 1
	// filterHeader is the length of a filter's kind and probes.
	filterHeader = 2
	// filterBitsPerSubject sizes a filter: about 1% false positives with
	// 7 probes.
	filterBitsPerSubject = 10
	// maxProbes bounds a filter's probes.
	maxProbes = 16
)

// Bounds of Options.MaxFilterSize.
const (
	// DefaultMaxFilterSize bounds Meta.Filter when Options.MaxFilterSize
	// is 0: 64 KiB, 10 bits for each of 52k subjects. A block with more
	// distinct subjects gets fewer bits per subject (more false positives).
	DefaultMaxFilterSize = 64 << 10
	// MaxFilterSize bounds Options.MaxFilterSize.
	MaxFilterSize = 16 << 20
	// minFilterSize is the smallest filter: its header and 8 bytes of bits.
	minFilterSize = filterHeader + 8
)

// FNV-1a 64 (hash/fnv's New64a).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// subjectHash is the hash a filter probes with: fmix64(FNV-1a 64(s)).
func subjectHash(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// newFilter returns an empty filter for n subjects of at most maxSize bytes
// (at least minFilterSize).
func newFilter(n, maxSize int) []byte {
	size := filterHeader + (n*filterBitsPerSubject+7)/8
	size = max(minFilterSize, min(size, max(maxSize, minFilterSize)))
	m := float64(8 * (size - filterHeader))
	probes := int(math.Round(m / float64(max(n, 1)) * math.Ln2))
	probes = max(1, min(probes, maxProbes))
	f := make([]byte, size)
	f[0], f[1] = filterKind, byte(probes)
	return f
}

// filterAdd sets the bits of a subject of hash h in filter f, made by
// newFilter.
func filterAdd(f []byte, h uint64) {
	m := uint64(8 * (len(f) - filterHeader))
	d := bits.RotateLeft64(h, 32) | 1
	for range int(f[1]) {
		j := h % m
		f[filterHeader+j/8] |= 1 << (j % 8)
		h += d
	}
}

// FilterMayContain reports whether the block whose Meta.Filter is filter
// may hold a message on subject: false means it holds none. An empty filter
// (a block sealed without Options.Subjects, or an index entry that has
// none) and a filter this package cannot read may hold anything.
func FilterMayContain(filter []byte, subject string) bool {
	if len(filter) <= filterHeader || filter[0] != filterKind || filter[1] == 0 || filter[1] > maxProbes {
		return true
	}
	h := subjectHash(subject)
	m := uint64(8 * (len(filter) - filterHeader))
	d := bits.RotateLeft64(h, 32) | 1
	for range int(filter[1]) {
		j := h % m
		if filter[filterHeader+j/8]&(1<<(j%8)) == 0 {
			return false
		}
		h += d
	}
	return true
}
