package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// maxAdminBlocks bounds the blocks one admin.promote or admin.demote moves;
// a range overlapping more is answered 413.
const maxAdminBlocks = 1000

// MoveRequest is the body of admin.promote and admin.demote: one block of
// Stream by the sequence it starts at (FirstSeq), or every block overlapping
// [StartSeq, EndSeq]. Exactly one of the two forms is given.
type MoveRequest struct {
	Stream   string `json:"stream"`
	FirstSeq uint64 `json:"first_seq,omitempty"`
	StartSeq uint64 `json:"start_seq,omitempty"`
	EndSeq   uint64 `json:"end_seq,omitempty"`
}

// MoveReply is the reply of admin.promote and admin.demote.
type MoveReply struct {
	// Blocks are the blocks moved, in sequence order.
	Blocks []MovedBlock `json:"blocks"`
	// Errors are the blocks of a range that could not be moved, and moved
	// blocks whose index entry could not follow.
	Errors []MoveError `json:"errors"`
}

// MovedBlock is one block moved by admin.promote or admin.demote. Tier is
// the tier it was copied into (promote) or removed from (demote).
type MovedBlock struct {
	FirstSeq uint64 `json:"first_seq"`
	Key      string `json:"key"`
	Tier     string `json:"tier"`
}

// MoveError is one block's failure in a MoveReply, with the code and
// description an error reply would carry.
type MoveError struct {
	FirstSeq    uint64 `json:"first_seq"`
	Key         string `json:"key"`
	Code        string `json:"code"`
	Description string `json:"description"`
}

// moveFunc moves one block between this replica's tiers and returns the
// tier it names (tier.Controller's Promote or Demote).
type moveFunc func(ctx context.Context, key string) (string, error)

func (a *api) preparePromote(req micro.Request) (job, error) {
	return a.prepareMove(req, "promote", a.ctrl.Promote)
}

func (a *api) prepareDemote(req micro.Request) (job, error) {
	return a.prepareMove(req, "demote", a.ctrl.Demote)
}

// prepareMove checks a promote or demote request and picks its blocks from
// the view; the worker moves them one by one.
func (a *api) prepareMove(req micro.Request, verb string, move moveFunc) (job, error) {
	r, err := parseMove(req.Data())
	if err != nil {
		return nil, err
	}
	blocks, err := a.moveBlocks(r)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, reply string) error {
		out, err := a.move(ctx, verb, r.Stream, blocks, move)
		if err != nil {
			return err
		}
		return a.publishJSON(reply, out)
	}, nil
}

// parseMove decodes and checks an admin.promote or admin.demote body.
func parseMove(data []byte) (MoveRequest, error) {
	var r MoveRequest
	if err := decodeBody(data, &r); err != nil {
		return r, err
	}
	if r.Stream == "" {
		return r, badRequest(`missing "stream"`)
	}
	if _, err := parseStream(r.Stream); err != nil {
		return r, err
	}
	ranged := r.StartSeq != 0 || r.EndSeq != 0
	switch {
	case r.FirstSeq != 0 && ranged:
		return r, badRequest("set first_seq, or start_seq and end_seq, not both")
	case r.FirstSeq != 0:
		return r, nil
	case !ranged:
		return r, badRequest("set first_seq, or start_seq and end_seq")
	case r.StartSeq == 0 || r.EndSeq == 0:
		return r, badRequest("start_seq and end_seq go together, both 1 or more")
	case r.EndSeq < r.StartSeq:
		return r, badRequest("end_seq %d is before start_seq %d", r.EndSeq, r.StartSeq)
	}
	return r, nil
}

// moveBlocks returns the blocks r names, from the view.
func (a *api) moveBlocks(r MoveRequest) ([]index.BlockMeta, error) {
	if _, ok := a.ix.Stream(r.Stream); !ok {
		return nil, fmt.Errorf("%w: stream %q is not archived", ErrNotFound, r.Stream)
	}
	if r.FirstSeq != 0 {
		m, ok := a.ix.Block(r.Stream, r.FirstSeq)
		if !ok {
			return nil, fmt.Errorf("%w: stream %q has no block starting at seq %d", ErrNotFound, r.Stream, r.FirstSeq)
		}
		return []index.BlockMeta{m}, nil
	}
	list := a.ix.Blocks(r.Stream, r.StartSeq, maxAdminBlocks+1)
	n := 0
	for n < len(list) && list[n].FirstSeq <= r.EndSeq {
		n++
	}
	switch {
	case n > maxAdminBlocks:
		return nil, fmt.Errorf("%w: seqs %d to %d of %q span over %d blocks; move a smaller range",
			ErrTooLarge, r.StartSeq, r.EndSeq, r.Stream, maxAdminBlocks)
	case n == 0:
		return nil, fmt.Errorf("%w: stream %q has no block overlapping seqs %d to %d", ErrNotFound, r.Stream, r.StartSeq, r.EndSeq)
	}
	return list[:n], nil
}

// move moves blocks with fn, one at a time, and, when this replica leads
// the stream, sets each moved block's tiers in the index to where its
// controller finds it. A single block's failure is the request's error; in
// a range, failures are listed in the reply, and the request fails only
// when no block moved. It stops at ctx's end.
func (a *api) move(ctx context.Context, verb, stream string, blocks []index.BlockMeta, fn moveFunc) (MoveReply, error) {
	out := MoveReply{Blocks: []MovedBlock{}, Errors: []MoveError{}}
	var first error
	for _, b := range blocks {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("%s %q: stopped after %d of %d blocks: %w", verb, stream, len(out.Blocks), len(blocks), err)
		}
		name, err := fn(ctx, b.Key)
		if err != nil {
			err = moveError(verb, stream, b, err)
			if len(blocks) == 1 {
				return out, err
			}
			if first == nil {
				first = err
			}
			out.Errors = append(out.Errors, blockError(b, err))
			continue
		}
		out.Blocks = append(out.Blocks, MovedBlock{FirstSeq: b.FirstSeq, Key: b.Key, Tier: name})
		if err := a.followTiers(ctx, stream, b); err != nil {
			out.Errors = append(out.Errors, blockError(b, err))
		}
	}
	if len(out.Blocks) == 0 && first != nil {
		return out, first
	}
	return out, nil
}

// moveError gives the error of moving block b a description that names it
// and what to do.
func moveError(verb, stream string, b index.BlockMeta, err error) error {
	switch {
	case errors.Is(err, tier.ErrLastCopy):
		return fmt.Errorf("%s stream %q block at seq %d: %w; no colder tier holds it, so demoting it would delete it",
			verb, stream, b.FirstSeq, err)
	case errors.Is(err, tier.ErrNotFound):
		return fmt.Errorf("%w: %s stream %q block at seq %d: no tier of this replica holds it: %v",
			ErrNotFound, verb, stream, b.FirstSeq, err)
	}
	return fmt.Errorf("%s stream %q block at seq %d: %w", verb, stream, b.FirstSeq, err)
}

func blockError(b index.BlockMeta, err error) MoveError {
	code, desc := errorCode(err)
	return MoveError{FirstSeq: b.FirstSeq, Key: b.Key, Code: code, Description: desc}
}

// followTiers sets b's tiers in the index to those holding it, when this
// replica leads stream (the index follows its leader's tiers).
func (a *api) followTiers(ctx context.Context, stream string, b index.BlockMeta) error {
	if a.arch == nil || !a.arch.leads(stream) {
		return nil
	}
	held, err := a.ctrl.Locate(ctx, b.Key)
	if err != nil {
		return fmt.Errorf("index update of stream %q block at seq %d: locate: %w", stream, b.FirstSeq, err)
	}
	if err := a.ix.UpdateTiers(ctx, stream, b.FirstSeq, held); err != nil {
		return fmt.Errorf("index update of stream %q block at seq %d: %w", stream, b.FirstSeq, err)
	}
	return nil
}

// moveRequestDoc is the request metadata of the promote and demote
// endpoints.
const moveRequestDoc = `JSON {"stream": s, "first_seq": n} or {"stream": s, "start_seq": a, "end_seq": b} (at most 1000 blocks)`

// moveReplyDoc is the reply metadata of the promote and demote endpoints.
func moveReplyDoc(dir string) string {
	return `JSON {"blocks": [{"first_seq", "key", "tier": the tier moved ` + dir + `}], "errors": [{"first_seq", "key", "code", "description"}]}`
}
