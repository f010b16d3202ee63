package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxAttempts bounds the retries of a conditional write that keeps meeting a
// concurrent change.
const maxAttempts = 8

// entry is the newest message of one key in the index bucket.
type entry struct {
	value []byte
	rev   uint64 // its stream sequence; 0 when the key has no message
	live  bool   // a value, not a delete or purge marker
}

// last reads the newest message of key, markers included: unlike
// KeyValue.Get, it returns a marker's revision, which a conditional write
// over the marker must expect.
func (ix *Index) last(ctx context.Context, key string) (entry, error) {
	m, err := ix.kvStream.GetLastMsgForSubject(ctx, ix.subjPre+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return entry{}, nil
	}
	if err != nil {
		return entry{}, fmt.Errorf("index: read %s: %w", key, err)
	}
	return entry{value: m.Data, rev: m.Sequence, live: !isMarker(m.Header)}, nil
}

// isMarker reports whether a KV message is a delete or purge marker, written
// by a client or by the server.
func isMarker(h nats.Header) bool {
	return h.Get("KV-Operation") != "" || h.Get(jetstream.MarkerReasonHeader) != ""
}

// isWrongLastSeq reports whether err is JetStream refusing a write whose
// expected last sequence did not match.
func isWrongLastSeq(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Head returns the head entry of stream and its revision, the revision to
// pass to Commit. A stream without a head returns a zero Head and revision 0
// (or the revision of the marker left by deleting it). A head that does not
// decode returns an error wrapping ErrCorrupt with its revision.
func (ix *Index) Head(ctx context.Context, stream string) (Head, uint64, error) {
	if err := validateStream(stream); err != nil {
		return Head{}, 0, err
	}
	e, err := ix.last(ctx, headKey(stream))
	if err != nil || !e.live {
		return Head{}, e.rev, err
	}
	h, err := decodeHead(stream, e.value)
	return h, e.rev, err
}

// Commit records meta as the stream's newest block, committed by leader for
// the stream's incarnation, provided the head is still at headRev (as Head
// returned it); it returns the head's new revision. It moves the head, then
// writes the block entry, or with Options.AtomicCommit does both in one
// atomic batch (see the package documentation).
//
// If the head moved since headRev, Commit writes nothing and returns an error
// wrapping ErrFenced: another leader committed, and the caller must stop
// writing for the stream. If a different block entry already exists at
// meta's key, it writes nothing and returns an error wrapping ErrConflict.
// Commit may be called again with the same arguments after any other error:
// if the earlier call took effect, it returns the head's revision without
// writing again.
//
// In two-step mode an error may follow a successful head write (the block
// entry could not be written); the head's new revision is returned with it,
// and Repair writes the entry.
func (ix *Index) Commit(ctx context.Context, meta BlockMeta, headRev uint64, leader, incarnation string) (uint64, error) {
	if err := meta.Validate(); err != nil {
		return 0, err
	}
	if leader == "" {
		return 0, fmt.Errorf("%w: commit without a leader id", ErrInvalid)
	}
	h := Head{
		Stream:      meta.Stream,
		LastSeq:     meta.LastSeq,
		Block:       meta,
		Leader:      leader,
		Incarnation: incarnation,
		Committed:   time.Now().UnixNano(),
	}
	headVal, err := json.Marshal(&h)
	if err != nil {
		return 0, fmt.Errorf("index: encode head: %w", err)
	}
	blkVal, err := json.Marshal(&meta)
	if err != nil {
		return 0, fmt.Errorf("index: encode block: %w", err)
	}
	bk, hk := blockKey(meta.Stream, meta.FirstSeq), headKey(meta.Stream)
	for range maxAttempts {
		blk, err := ix.blockSlot(ctx, &meta)
		if err != nil {
			if errors.Is(err, ErrConflict) {
				// Being deposed is the news that matters to the caller.
				if _, _, ferr := ix.fence(ctx, &h, headRev); ferr != nil {
					return 0, ferr
				}
			}
			return 0, err
		}
		var rev uint64
		switch {
		case blk.live:
			// The entry is there (an earlier attempt, or Repair): only the
			// head moves.
			rev, err = ix.kv.Update(ctx, hk, headVal, headRev)
		case ix.atomic:
			rev, err = ix.publishAtomic(ctx, []write{
				{key: bk, value: blkVal, expect: blk.rev},
				{key: hk, value: headVal, expect: headRev},
			})
		default:
			rev, err = ix.kv.Update(ctx, hk, headVal, headRev)
			if err == nil {
				return rev, ix.createBlock(ctx, &meta, blkVal, rev)
			}
		}
		if err == nil {
			return rev, nil
		}
		if !isWrongLastSeq(err) {
			return 0, fmt.Errorf("index: commit %s: %w", bk, err)
		}
		// An expectation failed: the head moved, or the block slot changed
		// under us (then look again).
		curRev, landed, ferr := ix.fence(ctx, &h, headRev)
		switch {
		case ferr != nil:
			return 0, ferr
		case landed && !ix.atomic && !blk.live:
			return curRev, ix.createBlock(ctx, &meta, blkVal, curRev)
		case landed:
			return curRev, nil
		}
	}
	return 0, fmt.Errorf("%w: commit %s kept meeting concurrent changes", ErrConflict, bk)
}

// fence reads the head of h.Stream after a write conditional on headRev
// failed. It reports whether the head records h itself (an earlier call with
// the same arguments took effect) and its revision then; it returns an error
// wrapping ErrFenced if the head moved to anything else. A head still at
// headRev is neither.
func (ix *Index) fence(ctx context.Context, h *Head, headRev uint64) (uint64, bool, error) {
	cur, curRev, err := ix.Head(ctx, h.Stream)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return 0, false, err
	}
	switch {
	case curRev == headRev:
		return curRev, false, nil
	case err == nil && cur.sameCommit(h):
		return curRev, true, nil
	}
	return curRev, false, fmt.Errorf("%w: head of %q is at revision %d, not %d", ErrFenced, h.Stream, curRev, headRev)
}

// blockSlot reads the key meta would be written to. It returns an error
// wrapping ErrConflict if the key holds a different block.
func (ix *Index) blockSlot(ctx context.Context, meta *BlockMeta) (entry, error) {
	bk := blockKey(meta.Stream, meta.FirstSeq)
	e, err := ix.last(ctx, bk)
	if err != nil || !e.live {
		return e, err
	}
	cur, err := decodeBlock(meta.Stream, meta.FirstSeq, e.value)
	if err != nil {
		return e, fmt.Errorf("%w: %v", ErrConflict, err)
	}
	if !sameBlock(&cur, meta) {
		return e, fmt.Errorf("%w: %s holds %d-%d (created %d), not %d-%d (created %d)", ErrConflict, bk,
			cur.FirstSeq, cur.LastSeq, cur.Created, meta.FirstSeq, meta.LastSeq, meta.Created)
	}
	return e, nil
}

// createBlock writes the block entry of a committed head (at headRev) in
// two-step mode. An entry for the same block already there is success.
func (ix *Index) createBlock(ctx context.Context, meta *BlockMeta, val []byte, headRev uint64) error {
	bk := blockKey(meta.Stream, meta.FirstSeq)
	_, err := ix.kv.Create(ctx, bk, val)
	if err == nil {
		return nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		if _, err := ix.blockSlot(ctx, meta); err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("index: head of %q committed at revision %d, but writing %s failed (Repair writes it): %w",
		meta.Stream, headRev, bk, err)
}

// Repair writes the block entry of the stream's head if it is missing: the
// state a crash between the two writes of a two-step commit leaves. It
// reports whether it wrote the entry. An entry deleted after the head was
// committed (block expiry) is not written again. The ingest calls it when it
// takes over a stream, before reading the head.
func (ix *Index) Repair(ctx context.Context, stream string) (bool, error) {
	for range maxAttempts {
		h, headRev, err := ix.Head(ctx, stream)
		if err != nil || h.Block.FirstSeq == 0 {
			return false, err
		}
		e, err := ix.blockSlot(ctx, &h.Block)
		switch {
		case err != nil:
			return false, err
		case e.live:
			return false, nil
		case e.rev > headRev:
			// Deleted after the commit.
			return false, nil
		}
		// Never written, or deleted in an earlier life of the stream.
		val, err := json.Marshal(&h.Block)
		if err != nil {
			return false, fmt.Errorf("index: encode block: %w", err)
		}
		bk := blockKey(stream, h.Block.FirstSeq)
		_, err = ix.kv.Update(ctx, bk, val, e.rev)
		if err == nil {
			return true, nil
		}
		if !isWrongLastSeq(err) {
			return false, fmt.Errorf("index: repair %s: %w", bk, err)
		}
		// Written or deleted meanwhile; look again.
	}
	return false, fmt.Errorf("%w: repair of %q kept meeting concurrent changes", ErrConflict, stream)
}

// UpdateTiers records which tiers hold the block of stream starting at first.
// It rewrites the entry conditionally on its revision, retrying when a
// concurrent change wins. It returns an error wrapping ErrNotFound if there
// is no such entry. The head keeps the tiers of the commit.
func (ix *Index) UpdateTiers(ctx context.Context, stream string, first uint64, tiers []string) error {
	if err := validateStream(stream); err != nil {
		return err
	}
	if slices.Contains(tiers, "") {
		return fmt.Errorf("%w: empty tier name", ErrInvalid)
	}
	bk := blockKey(stream, first)
	for range maxAttempts {
		e, err := ix.last(ctx, bk)
		if err != nil {
			return err
		}
		if !e.live {
			return fmt.Errorf("%w: block %s", ErrNotFound, bk)
		}
		m, err := decodeBlock(stream, first, e.value)
		if err != nil {
			return err
		}
		if slices.Equal(m.Tiers, tiers) {
			return nil
		}
		m.Tiers = tiers
		val, err := json.Marshal(&m)
		if err != nil {
			return fmt.Errorf("index: encode block: %w", err)
		}
		_, err = ix.kv.Update(ctx, bk, val, e.rev)
		if err == nil {
			return nil
		}
		if !isWrongLastSeq(err) {
			return fmt.Errorf("index: update tiers of %s: %w", bk, err)
		}
	}
	return fmt.Errorf("%w: %s kept changing", ErrConflict, bk)
}

// DeleteBlock removes the entry of the block of stream starting at first
// (block expiry). Deleting a missing entry is not an error. The marker it
// leaves expires after Options.MarkerTTL, except for the head's block: that
// marker stays, so that Repair knows the entry was deleted on purpose.
func (ix *Index) DeleteBlock(ctx context.Context, stream string, first uint64) error {
	if err := validateStream(stream); err != nil {
		return err
	}
	bk := blockKey(stream, first)
	for range maxAttempts {
		e, err := ix.last(ctx, bk)
		if err != nil {
			return err
		}
		if !e.live {
			return nil
		}
		opts := []jetstream.KVDeleteOpt{jetstream.LastRevision(e.rev)}
		if h, _, err := ix.Head(ctx, stream); err == nil && h.Block.FirstSeq != first && ix.markerTTL > 0 {
			opts = append(opts, jetstream.PurgeTTL(ix.markerTTL))
		}
		err = ix.kv.Purge(ctx, bk, opts...)
		if err == nil {
			return nil
		}
		if !isWrongLastSeq(err) {
			return fmt.Errorf("index: delete %s: %w", bk, err)
		}
	}
	return fmt.Errorf("%w: %s kept changing", ErrConflict, bk)
}
