package index

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TierUsage is how many blocks of a stream a tier holds and their stored
// bytes, as the index records it.
type TierUsage struct {
	Blocks int   `json:"blocks"`
	Bytes  int64 `json:"bytes"`
}

// StreamSummary describes what the index holds for one stream.
type StreamSummary struct {
	// Stream is the stream's name.
	Stream string `json:"stream"`
	// Blocks is the number of block entries.
	Blocks int `json:"blocks"`
	// Msgs is the number of archived messages in them.
	Msgs uint64 `json:"msgs"`
	// FirstSeq and LastSeq are the first block's first and the last
	// block's last sequence (0 without blocks).
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// FirstTime and LastTime are the first block's first and the last
	// block's last timestamp, in unix nanoseconds.
	FirstTime int64 `json:"first_time"`
	LastTime  int64 `json:"last_time"`
	// RawBytes and Bytes are the uncompressed and stored sizes of the
	// blocks.
	RawBytes int64 `json:"raw_bytes"`
	Bytes    int64 `json:"bytes"`
	// Tiers is the usage of each tier named by the blocks' entries.
	Tiers map[string]TierUsage `json:"tiers,omitempty"`
	// Head is the stream's head entry, if it has one.
	Head *Head `json:"head,omitempty"`
}

// Lookup returns the block holding seq of stream. It reports false for a
// sequence before the first block, after the last, or in a gap between two
// blocks, without touching any tier. It does not allocate.
func (ix *Index) Lookup(stream string, seq uint64) (BlockMeta, bool) {
	v := &ix.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.streams[stream]
	if s == nil {
		return BlockMeta{}, false
	}
	i, ok := s.holding(seq)
	if !ok {
		return BlockMeta{}, false
	}
	return s.blocks[i], true
}

// LookupTime returns the first block of stream whose LastTime is at or after
// t: the block to start reading from for messages stored at or after t. It
// assumes timestamps grow with sequences, as JetStream assigns them.
func (ix *Index) LookupTime(stream string, t time.Time) (BlockMeta, bool) {
	ns := t.UnixNano()
	v := &ix.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.streams[stream]
	if s == nil {
		return BlockMeta{}, false
	}
	lo, hi := 0, len(s.blocks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.blocks[m].LastTime < ns {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(s.blocks) {
		return BlockMeta{}, false
	}
	return s.blocks[lo], true
}

// Block returns the block of stream that starts at first.
func (ix *Index) Block(stream string, first uint64) (BlockMeta, bool) {
	v := &ix.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.streams[stream]
	if s == nil {
		return BlockMeta{}, false
	}
	i := s.searchFirst(first)
	if i == len(s.blocks) || s.blocks[i].FirstSeq != first {
		return BlockMeta{}, false
	}
	return s.blocks[i], true
}

// Blocks returns up to limit blocks of stream in sequence order, starting
// with the block holding from or, if none does, the first block after it.
// A limit of 0 or less returns them all. The slice is the caller's; the
// Tiers slices in it are shared with the view.
func (ix *Index) Blocks(stream string, from uint64, limit int) []BlockMeta {
	v := &ix.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.streams[stream]
	if s == nil {
		return nil
	}
	i, _ := s.holding(from)
	end := len(s.blocks)
	if limit > 0 && end-i > limit {
		end = i + limit
	}
	if i >= end {
		return nil
	}
	return slices.Clone(s.blocks[i:end])
}

// Select returns the blocks of stream that keep accepts, in sequence order.
// keep is called with the view's read lock held, on the view's own entry:
// it must not change it nor call into the index. Select spares a search
// over many blocks (such as a test of each block's filter) the copy of
// every block that Blocks makes. The slice is the caller's; the Tiers and
// Filter slices in it are shared with the view.
func (ix *Index) Select(stream string, keep func(*BlockMeta) bool) []BlockMeta {
	v := &ix.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.streams[stream]
	if s == nil {
		return nil
	}
	var out []BlockMeta
	for i := range s.blocks {
		if keep(&s.blocks[i]) {
			out = append(out, s.blocks[i])
		}
	}
	return out
}

// StreamNames returns the names of the streams Streams summarizes, in no
// particular order: for a caller that needs only their names.
func (ix *Index) StreamNames() []string {
	v := &ix.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.streams))
	for name := range v.streams {
		out = append(out, name)
	}
	return out
}

// Streams returns a summary of every stream the index holds blocks or a head
// for, sorted by name.
func (ix *Index) Streams() []StreamSummary {
	v := &ix.view
	v.mu.RLock()
	out := make([]StreamSummary, 0, len(v.streams))
	for _, s := range v.streams {
		out = append(out, s.summary())
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b StreamSummary) int { return strings.Compare(a.Stream, b.Stream) })
	return out
}

// Stream returns the summary of one stream, and false if the index holds
// nothing for it.
func (ix *Index) Stream(stream string) (StreamSummary, bool) {
	v := &ix.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := v.streams[stream]
	if s == nil {
		return StreamSummary{}, false
	}
	return s.summary(), true
}

// summary describes the stream. Lock should be held.
func (s *streamView) summary() StreamSummary {
	sum := StreamSummary{
		Stream:   s.name,
		Blocks:   len(s.blocks),
		Msgs:     s.msgs,
		RawBytes: s.raw,
		Bytes:    s.size,
	}
	if n := len(s.blocks); n > 0 {
		sum.FirstSeq, sum.FirstTime = s.blocks[0].FirstSeq, s.blocks[0].FirstTime
		sum.LastSeq, sum.LastTime = s.blocks[n-1].LastSeq, s.blocks[n-1].LastTime
	}
	if len(s.tiers) > 0 {
		sum.Tiers = make(map[string]TierUsage, len(s.tiers))
		for k, u := range s.tiers {
			sum.Tiers[k] = u
		}
	}
	if s.hasHead {
		h := s.head
		sum.Head = &h
	}
	return sum
}

// WaitFor waits until the view holds a block of stream whose LastSeq is seq
// or later, so that a writer can read its own commit through the view. It
// returns ctx's error if ctx ends first, and an error wrapping ErrClosed if
// the view stops following the bucket.
func (ix *Index) WaitFor(ctx context.Context, stream string, seq uint64) error {
	if err := validateStream(stream); err != nil {
		return err
	}
	v := &ix.view
	for {
		v.mu.Lock()
		if s := v.streams[stream]; s != nil && len(s.blocks) > 0 && s.blocks[len(s.blocks)-1].LastSeq >= seq {
			v.mu.Unlock()
			return nil
		}
		if v.stopped {
			v.mu.Unlock()
			return fmt.Errorf("%w: waiting for %q seq %d", ErrClosed, stream, seq)
		}
		if v.changed == nil {
			v.changed = make(chan struct{})
		}
		ch := v.changed
		v.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
