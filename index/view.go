package index

import (
	"cmp"
	"slices"
	"sync"
)

// view is the in-memory copy of the bucket's block and head entries. It is
// guarded by one RWMutex: lookups take the read lock and a binary search, the
// watch takes the write lock to apply one entry.
//
// While the view loads (between startLoad and finishLoad) blocks are appended
// unsorted and sorted once at the end: the bucket delivers its entries in
// revision order, which is not sequence order once tiers of older blocks have
// been updated, and inserting each one in place would cost O(n) apiece.
type view struct {
	mu       sync.RWMutex
	streams  map[string]*streamView
	tierSets [][]string    // interned Tiers slices
	changed  chan struct{} // closed on the next change; nil while no one waits
	loading  bool          // blocks are unsorted and not yet counted
	stopped  bool          // the watch has ended; the view no longer changes
}

// streamView holds one stream's blocks, sorted by FirstSeq, and its head.
// Blocks of one stream do not overlap; entries that would are kept all the
// same (the index does not judge them), and lookups find one of them.
type streamView struct {
	name    string
	blocks  []BlockMeta
	head    Head
	hasHead bool
	headRev uint64

	msgs      uint64
	raw, size int64
	tiers     map[string]TierUsage
}

// maxTierSets bounds the interned tier lists; past it, lists are kept as
// decoded.
const maxTierSets = 64

func (v *view) init() {
	v.streams = make(map[string]*streamView)
}

// startLoad switches the view to loading.
func (v *view) startLoad() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.loading = true
}

// finishLoad sorts what was loaded, keeping the entry applied last where a
// key was applied twice, counts it, and switches the view to following.
func (v *view) finishLoad() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.loading {
		return
	}
	v.loading = false
	for _, s := range v.streams {
		slices.SortStableFunc(s.blocks, func(a, b BlockMeta) int { return cmp.Compare(a.FirstSeq, b.FirstSeq) })
		out := s.blocks[:0]
		for i, m := range s.blocks {
			if i+1 < len(s.blocks) && s.blocks[i+1].FirstSeq == m.FirstSeq {
				continue // a later entry for the same key follows
			}
			out = append(out, m)
		}
		clear(s.blocks[len(out):])
		s.blocks = out
		for i := range s.blocks {
			s.account(&s.blocks[i], true)
		}
		v.dropIfEmptyLocked(s)
	}
	v.notifyLocked()
}

// internTiersLocked returns a shared copy of tiers, so that the view holds one
// slice per distinct list. Lock should be held for writing.
func (v *view) internTiersLocked(tiers []string) []string {
	if len(tiers) == 0 {
		return nil
	}
	for _, t := range v.tierSets {
		if slices.Equal(t, tiers) {
			return t
		}
	}
	if len(v.tierSets) >= maxTierSets {
		return tiers
	}
	t := slices.Clip(slices.Clone(tiers))
	v.tierSets = append(v.tierSets, t)
	return t
}

// streamLocked returns the view of stream, creating it when create is set.
// Lock should be held (for writing when create is set).
func (v *view) streamLocked(stream string, create bool) *streamView {
	s := v.streams[stream]
	if s == nil && create {
		s = &streamView{name: stream, tiers: make(map[string]TierUsage)}
		v.streams[stream] = s
	}
	return s
}

// dropIfEmptyLocked forgets a stream with neither blocks nor head.
// Lock should be held for writing.
func (v *view) dropIfEmptyLocked(s *streamView) {
	if len(s.blocks) == 0 && !s.hasHead {
		delete(v.streams, s.name)
	}
}

// notifyLocked wakes WaitFor callers. Lock should be held for writing.
func (v *view) notifyLocked() {
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
}

// putBlock adds m to the view, or replaces the entry with the same first
// sequence. Appending after the last block, the common case, is O(1)
// amortised.
func (v *view) putBlock(m BlockMeta) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.streamLocked(m.Stream, true)
	m.Stream = s.name
	m.Tiers = v.internTiersLocked(m.Tiers)
	if v.loading {
		s.blocks = append(s.blocks, m)
		return
	}
	if n := len(s.blocks); n == 0 || m.FirstSeq > s.blocks[n-1].FirstSeq {
		s.blocks = append(s.blocks, m)
	} else if i := s.searchFirst(m.FirstSeq); s.blocks[i].FirstSeq == m.FirstSeq {
		s.account(&s.blocks[i], false)
		s.blocks[i] = m
	} else {
		s.blocks = slices.Insert(s.blocks, i, m)
	}
	s.account(&m, true)
	v.notifyLocked()
}

// deleteBlock removes the block of stream starting at first, if present.
// Removing the first block, the common case for expiry, is O(1).
func (v *view) deleteBlock(stream string, first uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.streamLocked(stream, false)
	if s == nil {
		return
	}
	if v.loading {
		s.blocks = slices.DeleteFunc(s.blocks, func(m BlockMeta) bool { return m.FirstSeq == first })
		return
	}
	i := s.searchFirst(first)
	if i == len(s.blocks) || s.blocks[i].FirstSeq != first {
		return
	}
	s.account(&s.blocks[i], false)
	if i == 0 {
		s.blocks[0] = BlockMeta{} // let the strings go
		s.blocks = s.blocks[1:]
	} else {
		s.blocks = slices.Delete(s.blocks, i, i+1)
	}
	if c := cap(s.blocks); c > 1024 && len(s.blocks) < c/4 {
		s.blocks = slices.Clone(s.blocks)
	}
	v.dropIfEmptyLocked(s)
	v.notifyLocked()
}

// putHead records the head entry of its stream.
func (v *view) putHead(h Head, rev uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.streamLocked(h.Stream, true)
	h.Stream, h.Block.Stream = s.name, s.name
	s.head, s.hasHead, s.headRev = h, true, rev
	v.notifyLocked()
}

// deleteHead forgets the head entry of stream.
func (v *view) deleteHead(stream string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.streamLocked(stream, false)
	if s == nil || !s.hasHead {
		return
	}
	s.head, s.hasHead, s.headRev = Head{}, false, 0
	v.dropIfEmptyLocked(s)
	v.notifyLocked()
}

// stop marks the view as no longer followed and wakes WaitFor callers.
func (v *view) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopped = true
	v.notifyLocked()
}

// account adds m's contribution to the stream's totals, or removes it when
// add is false.
func (s *streamView) account(m *BlockMeta, add bool) {
	n := 1
	if add {
		s.msgs += m.Count
		s.raw += m.RawSize
		s.size += m.Size
	} else {
		n = -1
		s.msgs -= m.Count
		s.raw -= m.RawSize
		s.size -= m.Size
	}
	for _, t := range m.Tiers {
		u := s.tiers[t]
		u.Blocks += n
		u.Bytes += int64(n) * m.Size
		if u.Blocks == 0 {
			delete(s.tiers, t)
		} else {
			s.tiers[t] = u
		}
	}
}

// searchFirst returns the index of the first block whose FirstSeq >= first.
func (s *streamView) searchFirst(first uint64) int {
	lo, hi := 0, len(s.blocks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.blocks[m].FirstSeq < first {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// holding returns the index of the block holding seq, or of the first block
// after it when none does (len(blocks) when there is none after it either),
// and whether a block holds it.
func (s *streamView) holding(seq uint64) (int, bool) {
	// The last block whose FirstSeq <= seq is the only one that may hold it.
	i := s.searchFirst(seq)
	if i < len(s.blocks) && s.blocks[i].FirstSeq == seq {
		return i, true
	}
	if i > 0 && seq <= s.blocks[i-1].LastSeq {
		return i - 1, true
	}
	return i, false
}
