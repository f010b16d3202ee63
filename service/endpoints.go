package service

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/index"
)

// Flow control of a range batch. The requester paces a range, as with
// JetStream's batched direct get: a batch never holds more than the
// max_msgs and max_bytes it asked for, so a requester asks for what it can
// hold unread (its subscription's pending limits) and for the next batch
// when it is ready for it; the worker is free as soon as a batch is sent.
// Within a batch, after this many messages or bytes the worker flushes the
// connection, waiting for the server to have taken what was sent, so that
// the batch never runs further ahead of the server than that.
const (
	flushEveryMsgs  = 256
	flushEveryBytes = 1 << 20
)

// endpointDef describes one endpoint: its micro name (micro names allow no
// dots: "msg-get" is DESIGN.md's msg.get), its subject under the prefix, what
// it takes and returns (its metadata), and its handler.
type endpointDef struct {
	name, subject  string
	request, reply string
	noQueue        bool
	fn             prepareFunc
}

func (a *api) endpoints() []endpointDef {
	return []endpointDef{
		{"msg-get", "get.>", "subject get.<stream>.<seq>, no body",
			"the message as a JetStream direct get returns it, with Nts-Tier", false, a.prepareGet},
		{"msg-last", "last.>", `subject last.<stream>, JSON {"subject": filter}`,
			"the newest archived message on a matching subject", false, a.prepareLast},
		{"msg-range", "range.>", "subject range.<stream>, JSON start_seq|start_time, end_seq, end_time, subject, max_msgs, max_bytes",
			"messages, then an end-of-batch message (Status 204, Nts-Last-Seq, Nts-Num-Pending)", false, a.prepareRange},
		{"streams", "streams", "no body", `JSON {"streams": [summary]}`, false, a.prepareStreams},
		{"stream-info", "stream.>", "subject stream.<stream>, no body",
			"JSON: tiers, archived range, lag, leader", false, a.prepareStreamInfo},
		{"blocks", "blocks.>", `subject blocks.<stream>, JSON {"from_seq": n, "limit": m}`,
			`JSON {"blocks": [block without its filter], "more": bool, "next_seq": n}, a page cut to fit the max payload`, false, a.prepareBlocks},
		{"block-info", "block.>", "subject block.<stream>.<first-seq>, no body", "JSON block entry without its filter", false, a.prepareBlockInfo},
		{"kv-get", "kv.*.get.>", `subject kv.<bucket>.get.<key>, optional JSON {"revision": n}`,
			"the key's newest (or asked) revision as a message reply with Nts-Kv-Operation; 404 when deleted or purged", false, a.prepareKVGet},
		{"kv-keys", "kv.*.keys", `subject kv.<bucket>.keys, optional JSON {"filter": wildcards, "after": key, "max_keys": n}`,
			`JSON {"keys": [...]} messages, then an end-of-batch message (Status 204, Nts-More, Nts-Last-Key)`, false, a.prepareKVKeys},
		{"kv-history", "kv.*.history.>", `subject kv.<bucket>.history.<key>, optional JSON {"start_revision": n, "max_msgs": m}`,
			"the key's revisions from its newest purge on, then an end-of-batch message (Status 204, Nts-Last-Seq, Nts-Num-Pending)", false, a.prepareKVHistory},
		{"obj-info", "obj.*.info", `subject obj.<bucket>.info, JSON {"name": name}`,
			"the object's info JSON as the object store wrote it; 404 when deleted", false, a.prepareObjInfo},
		{"obj-get", "obj.*.get", `subject obj.<bucket>.get, JSON {"name": name, "nuid": id, "start_chunk": n, "max_bytes": m}`,
			"chunk messages in order, then an end-of-batch message (Status 204, Nts-Obj-Nuid, Nts-Next-Chunk, Nts-Obj-Digest, Nts-More)", false, a.prepareObjGet},
		{"obj-list", "obj.*.list", `subject obj.<bucket>.list, optional JSON {"after": base64url name, "max_objects": n}`,
			"object info messages, then an end-of-batch message (Status 204, Nts-More, Nts-Last-Key)", false, a.prepareObjList},
		{"admin-status", "admin.status", "no body", "JSON status of the replica answering", false, a.prepareStatus},
		{"admin-status-instance", "admin." + a.id + ".status", "no body", "JSON status of this replica", true, a.prepareStatus},
		{"admin-promote", "admin.promote", moveRequestDoc, moveReplyDoc("into"), false, a.preparePromote},
		{"admin-demote", "admin.demote", moveRequestDoc, moveReplyDoc("out of"), false, a.prepareDemote},
		{"admin-promote-instance", "admin." + a.id + ".promote", moveRequestDoc, moveReplyDoc("into"), true, a.preparePromote},
		{"admin-demote-instance", "admin." + a.id + ".demote", moveRequestDoc, moveReplyDoc("out of"), true, a.prepareDemote},
	}
}

// notArchived is the 404 for a sequence the view holds no block for.
func (a *api) notArchived(stream string, seq uint64) error {
	if _, ok := a.ix.Stream(stream); !ok {
		return fmt.Errorf("%w: stream %q is not archived", ErrNotFound, stream)
	}
	return fmt.Errorf("%w: stream %q seq %d is not archived (never, or expired)", ErrNotFound, stream, seq)
}

func (a *api) prepareGet(req micro.Request) (job, error) {
	stream, seq, err := parseStreamSeq(a.cfg.Service.Prefix, "get", req.Subject())
	if err != nil {
		return nil, err
	}
	meta, ok := a.ix.Lookup(stream, seq)
	if !ok {
		return nil, a.notArchived(stream, seq)
	}
	return func(ctx context.Context, reply string) error {
		m, from, err := a.ctrl.ReadMsg(ctx, meta.Key, meta.Size, seq)
		if errors.Is(err, block.ErrNotFound) {
			return fmt.Errorf("%w: stream %q seq %d is not archived (deleted before it was)", ErrNotFound, stream, seq)
		}
		if err != nil {
			return err
		}
		return a.sendMsg(stream, m, from, reply)
	}, nil
}

// sendMsg sends one archived message as a reply.
func (a *api) sendMsg(stream string, m block.Msg, from, reply string) error {
	out, err := msgReply(stream, m, from)
	if err != nil {
		return err
	}
	if n := msgSize(out); n > a.nc.MaxPayload() {
		return fmt.Errorf("%w: stream %q seq %d is %d bytes with its headers, over the max payload %d",
			ErrTooLarge, stream, m.Seq, n, a.nc.MaxPayload())
	}
	return a.nc.PublishMsg(withSubject(out, reply))
}

func (a *api) prepareLast(req micro.Request) (job, error) {
	stream, err := parseStreamOnly(a.cfg.Service.Prefix, "last", req.Subject())
	if err != nil {
		return nil, err
	}
	r, err := parseLast(req.Data())
	if err != nil {
		return nil, err
	}
	sum, ok := a.ix.Stream(stream)
	if !ok || sum.Blocks == 0 {
		return nil, fmt.Errorf("%w: stream %q is not archived", ErrNotFound, stream)
	}
	newest := a.newestBlocks(stream, sum, maxLastBlocks)
	return func(ctx context.Context, reply string) error {
		for i := len(newest) - 1; i >= 0; i-- {
			b := newest[i]
			var (
				found bool
				last  block.Msg
				from  string
			)
			err := a.ctrl.ReadRange(ctx, b.Key, b.Size, b.FirstSeq, b.LastSeq, func(m block.Msg, t string) error {
				if subjectMatches(r.Subject, m.Subject) {
					found, last, from = true, m, t
				}
				return nil
			})
			if err != nil {
				return err
			}
			if found {
				return a.sendMsg(stream, last, from, reply)
			}
		}
		if sum.Blocks > len(newest) {
			return fmt.Errorf("%w: no message on %q in the newest %d blocks of %q; msg.range reaches further",
				ErrTooLarge, r.Subject, len(newest), stream)
		}
		return fmt.Errorf("%w: no archived message of %q on %q", ErrNotFound, stream, r.Subject)
	}, nil
}

// newestBlocks returns the newest n blocks of stream (fewer if it has fewer),
// in sequence order. The view pages forward only, so it searches for the
// highest sequence from which n blocks remain: the count of blocks holding
// or following a sequence drops by at most one per sequence.
func (a *api) newestBlocks(stream string, sum index.StreamSummary, n int) []index.BlockMeta {
	if sum.Blocks <= n {
		return a.ix.Blocks(stream, 0, n)
	}
	lo, hi := sum.FirstSeq, sum.LastSeq // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if len(a.ix.Blocks(stream, mid, n)) >= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return a.ix.Blocks(stream, lo, n)
}

func (a *api) prepareRange(req micro.Request) (job, error) {
	stream, err := parseStreamOnly(a.cfg.Service.Prefix, "range", req.Subject())
	if err != nil {
		return nil, err
	}
	r, err := parseRange(req.Data())
	if err != nil {
		return nil, err
	}
	if _, ok := a.ix.Stream(stream); !ok {
		return nil, fmt.Errorf("%w: stream %q is not archived", ErrNotFound, stream)
	}
	return func(ctx context.Context, reply string) error { return a.sendRange(ctx, stream, r, reply) }, nil
}

// errBatchFull stops reading a block when the batch is full or done.
var errBatchFull = errors.New("batch full")

// rangeBatch is the state of one msg.range batch.
type rangeBatch struct {
	a      *api
	stream string
	r      RangeRequest
	reply  string

	startNs, endNs int64
	endSeq         uint64
	last           uint64 // last seq covered
	sent           int
	bytes          int64
	unflushedMsgs  int
	unflushedBytes int64
	done           bool // the range is exhausted
}

// sendRange sends one batch of r to reply, then its end-of-batch message.
func (a *api) sendRange(ctx context.Context, stream string, r RangeRequest, reply string) error {
	b := &rangeBatch{a: a, stream: stream, r: r, reply: reply, endNs: math.MaxInt64, endSeq: math.MaxUint64}
	from := r.StartSeq
	if r.StartTime != nil {
		b.startNs = r.StartTime.UnixNano()
		blk, ok := a.ix.LookupTime(stream, *r.StartTime)
		if !ok {
			sum, _ := a.ix.Stream(stream)
			return a.nc.PublishMsg(withSubject(endOfBatch(sum.LastSeq, 0), reply))
		}
		from = blk.FirstSeq
	}
	if r.EndSeq != 0 {
		b.endSeq = r.EndSeq
	}
	if r.EndTime != nil {
		b.endNs = r.EndTime.UnixNano()
	}
	b.last = from - 1
	if err := b.run(ctx, from); err != nil {
		return err
	}
	var pending uint64
	if !b.done {
		sum, _ := a.ix.Stream(stream)
		if end := min(b.endSeq, sum.LastSeq); end > b.last {
			pending = end - b.last
		}
	}
	return a.nc.PublishMsg(withSubject(endOfBatch(b.last, pending), reply))
}

// run reads the blocks from seq from on, a page of the view at a time,
// until the batch is full or the range done.
func (b *rangeBatch) run(ctx context.Context, from uint64) error {
	const page = 64
	for {
		blocks := b.a.ix.Blocks(b.stream, from, page)
		if len(blocks) == 0 {
			b.done = true
			return nil
		}
		for _, blk := range blocks {
			if blk.FirstSeq > b.endSeq {
				b.done = true
				return nil
			}
			lo, hi := max(from, blk.FirstSeq), min(b.endSeq, blk.LastSeq)
			err := b.a.ctrl.ReadRange(ctx, blk.Key, blk.Size, lo, hi, func(m block.Msg, t string) error { return b.add(ctx, m, t) })
			if errors.Is(err, errBatchFull) {
				return nil
			}
			if err != nil {
				return err
			}
			b.last = max(b.last, hi)
			if hi == b.endSeq {
				b.done = true
				return nil
			}
			from = blk.LastSeq + 1
		}
	}
}

// add sends m if it is in the range and the batch has room for it.
func (b *rangeBatch) add(ctx context.Context, m block.Msg, from string) error {
	if m.Time > b.endNs {
		b.done = true
		return errBatchFull
	}
	if m.Time < b.startNs || !subjectMatches(b.r.Subject, m.Subject) {
		b.last = m.Seq
		return nil
	}
	out, err := msgReply(b.stream, m, from)
	if err != nil {
		return err
	}
	size := msgSize(out)
	if size > b.a.nc.MaxPayload() {
		if b.sent == 0 {
			return fmt.Errorf("%w: stream %q seq %d is %d bytes with its headers, over the max payload %d",
				ErrTooLarge, b.stream, m.Seq, size, b.a.nc.MaxPayload())
		}
		return errBatchFull
	}
	if b.sent >= b.r.MaxMsgs || (b.sent > 0 && b.bytes+size > b.r.MaxBytes) {
		return errBatchFull
	}
	if err := b.a.nc.PublishMsg(withSubject(out, b.reply)); err != nil {
		return err
	}
	b.sent++
	b.bytes += size
	b.last = m.Seq
	b.unflushedMsgs++
	b.unflushedBytes += size
	if b.unflushedMsgs >= flushEveryMsgs || b.unflushedBytes >= flushEveryBytes {
		b.unflushedMsgs, b.unflushedBytes = 0, 0
		if err := b.a.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("flush of a range batch: %w", err)
		}
	}
	return nil
}

// respondJSON answers req with v as JSON.
func respondJSON(req micro.Request, v any) error {
	if err := req.RespondJSON(v); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	return nil
}
