package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// BlockMeta describes one sealed block: the value of "blk.<stream>.<first>".
// Its JSON form (snake_case fields) is part of the durable layout; fields may
// be added, never renamed.
//
// A BlockMeta returned by the view shares its Tiers and Filter slices with
// the view: the caller must not modify them (copy them first, as
// UpdateTiers does with Tiers).
type BlockMeta struct {
	// Stream is the name of the stream the messages came from.
	Stream string `json:"stream"`
	// FirstSeq and LastSeq are the stream sequences of the block's first
	// and last messages; the block holds no other messages of the stream
	// in that range, and may have gaps.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// FirstTime and LastTime are the earliest and latest message
	// timestamps, in unix nanoseconds.
	FirstTime int64 `json:"first_time"`
	LastTime  int64 `json:"last_time"`
	// Count is the number of messages in the block.
	Count uint64 `json:"count"`
	// RawSize is the sum of the frames' uncompressed sizes; Size is the
	// size of the stored block.
	RawSize int64 `json:"raw_size"`
	Size    int64 `json:"size"`
	// Frames is the number of frames in the block.
	Frames int `json:"frames"`
	// Codec names the frames' compression ("none", "s2", "zstd").
	Codec string `json:"codec"`
	// Checksum is the block's checksum as the block format defines it.
	Checksum uint32 `json:"checksum"`
	// Tiers names the tiers holding the block, hottest first
	// (e.g. ["memory", "file", "blob"]).
	Tiers []string `json:"tiers"`
	// Key is the block's object key in the tiers.
	Key string `json:"key"`
	// Version is the block format version.
	Version int `json:"version"`
	// Created is when the block was sealed, in unix nanoseconds.
	Created int64 `json:"created"`
	// Filter is the block's filter over its subjects (block.Meta.Filter,
	// tested with block.FilterMayContain), for blocks sealed with a
	// subject index; empty otherwise. It is about 1.25 bytes per distinct
	// subject, bounded by the block's options.
	Filter []byte `json:"filter,omitempty"`
}

// Validate reports whether m describes a block: a valid stream name, a
// sequence range starting at 1 or later, a message count that fits the range,
// sizes that are not negative and tier names that are not empty. The error
// wraps ErrInvalid.
func (m *BlockMeta) Validate() error {
	if err := validateStream(m.Stream); err != nil {
		return err
	}
	switch {
	case m.FirstSeq == 0 || m.LastSeq < m.FirstSeq:
		return fmt.Errorf("%w: block %q sequence range %d-%d", ErrInvalid, m.Stream, m.FirstSeq, m.LastSeq)
	case m.Count == 0 || m.Count-1 > m.LastSeq-m.FirstSeq:
		return fmt.Errorf("%w: block %q %d-%d holds %d messages", ErrInvalid, m.Stream, m.FirstSeq, m.LastSeq, m.Count)
	case m.RawSize < 0 || m.Size < 0 || m.Frames < 0:
		return fmt.Errorf("%w: block %q %d-%d has a negative size", ErrInvalid, m.Stream, m.FirstSeq, m.LastSeq)
	}
	for _, t := range m.Tiers {
		if t == "" {
			return fmt.Errorf("%w: block %q %d-%d has an empty tier name", ErrInvalid, m.Stream, m.FirstSeq, m.LastSeq)
		}
	}
	return nil
}

// Equal reports whether m and o describe the same block with the same
// attributes.
func (m *BlockMeta) Equal(o *BlockMeta) bool {
	return sameBlock(m, o) && slices.Equal(m.Tiers, o.Tiers)
}

// sameBlock reports whether m and o describe the same sealed block, whatever
// tiers hold it now: UpdateTiers changes an entry's tiers after the commit.
// It compares every field but Tiers.
func sameBlock(m, o *BlockMeta) bool {
	return m.Stream == o.Stream && m.FirstSeq == o.FirstSeq && m.LastSeq == o.LastSeq &&
		m.FirstTime == o.FirstTime && m.LastTime == o.LastTime && m.Count == o.Count &&
		m.RawSize == o.RawSize && m.Size == o.Size && m.Frames == o.Frames &&
		m.Codec == o.Codec && m.Checksum == o.Checksum && m.Key == o.Key &&
		m.Version == o.Version && m.Created == o.Created && bytes.Equal(m.Filter, o.Filter)
}

// Head is the value of "head.<stream>": the last block committed for the
// stream and who committed it. The leader of a stream reads it with
// Index.Head and moves it forward with Index.Commit; its KV revision fences a
// deposed leader. Its JSON form is part of the durable layout.
type Head struct {
	// Stream is the name of the stream.
	Stream string `json:"stream"`
	// LastSeq is the last stream sequence sealed into a committed block.
	LastSeq uint64 `json:"last_seq"`
	// Block is the last committed block.
	Block BlockMeta `json:"block"`
	// Leader is the instance id of the replica that committed Block.
	Leader string `json:"leader"`
	// Incarnation identifies the life of the stream the blocks belong to;
	// it is opaque to the index (the ingest stores the stream's creation
	// time, to notice a stream deleted and created again).
	Incarnation string `json:"incarnation,omitempty"`
	// Committed is when the head was written, in unix nanoseconds.
	Committed int64 `json:"committed"`
}

// validate checks a head read from the bucket for stream.
func (h *Head) validate(stream string) error {
	if h.Stream != stream {
		return fmt.Errorf("%w: head of %q names stream %q", ErrCorrupt, stream, h.Stream)
	}
	if err := h.Block.Validate(); err != nil {
		return fmt.Errorf("%w: head of %q: %v", ErrCorrupt, stream, err)
	}
	if h.Block.Stream != stream || h.LastSeq != h.Block.LastSeq {
		return fmt.Errorf("%w: head of %q does not match its block", ErrCorrupt, stream)
	}
	return nil
}

// sameCommit reports whether h records the same commit as o: the same block
// by the same leader for the same incarnation.
func (h *Head) sameCommit(o *Head) bool {
	return h.Stream == o.Stream && h.Leader == o.Leader && h.Incarnation == o.Incarnation &&
		sameBlock(&h.Block, &o.Block)
}

// decodeBlock decodes and checks a blk entry stored under the key of stream
// and first.
func decodeBlock(stream string, first uint64, data []byte) (BlockMeta, error) {
	var m BlockMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return BlockMeta{}, fmt.Errorf("%w: block entry %s: %v", ErrCorrupt, blockKey(stream, first), err)
	}
	if err := m.Validate(); err != nil {
		return BlockMeta{}, fmt.Errorf("%w: block entry %s: %v", ErrCorrupt, blockKey(stream, first), err)
	}
	if m.Stream != stream || m.FirstSeq != first {
		return BlockMeta{}, fmt.Errorf("%w: block entry %s holds %q %d-%d",
			ErrCorrupt, blockKey(stream, first), m.Stream, m.FirstSeq, m.LastSeq)
	}
	return m, nil
}

// decodeHead decodes and checks the head entry of stream.
func decodeHead(stream string, data []byte) (Head, error) {
	var h Head
	if err := json.Unmarshal(data, &h); err != nil {
		return Head{}, fmt.Errorf("%w: head of %q: %v", ErrCorrupt, stream, err)
	}
	if err := h.validate(stream); err != nil {
		return Head{}, err
	}
	return h, nil
}
