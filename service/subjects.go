package service

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/index"
)

// The reads of KV buckets and object stores go through the subject index
// of each block (block.Reader.Subject and Subjects) and the block's filter
// in the index view (index.BlockMeta.Filter): see doc.go.

// blockPage is how many blocks of the view a scan takes at a time.
const blockPage = 1024

// newestArchive returns the archive of the newest incarnation of stream in
// the view: stream itself, or "<stream>~<n>" with the highest n (see
// archiveFor).
func (a *api) newestArchive(stream string) (string, bool) {
	best, bestN := "", 0
	for _, name := range a.ix.StreamNames() {
		n := 0
		switch rest, ok := strings.CutPrefix(name, stream); {
		case !ok:
			continue
		case rest == "":
			n = 1
		case strings.HasPrefix(rest, "~"):
			v, err := strconv.Atoi(rest[1:])
			if err != nil || v < 2 || strconv.Itoa(v) != rest[1:] {
				continue
			}
			n = v
		default:
			continue
		}
		if n > bestN {
			best, bestN = name, n
		}
	}
	return best, bestN > 0
}

// eachBlock calls fn with every block of archive in sequence order, a page
// of the view at a time, until fn returns false.
func (a *api) eachBlock(archive string, fn func(index.BlockMeta) bool) {
	for from := uint64(0); ; {
		blocks := a.ix.Blocks(archive, from, blockPage)
		for _, b := range blocks {
			if !fn(b) {
				return
			}
		}
		if len(blocks) < blockPage {
			return
		}
		from = blocks[len(blocks)-1].LastSeq + 1
	}
}

// candidates returns the blocks of archive whose filter says they may hold
// messages on subject, oldest first. Blocks without a filter are included.
func (a *api) candidates(archive, subject string) []index.BlockMeta {
	return a.ix.Select(archive, func(b *index.BlockMeta) bool { return block.FilterMayContain(b.Filter, subject) })
}

// entries returns the messages of block b on subject, from its subject
// index, in sequence order.
func (a *api) entries(ctx context.Context, b index.BlockMeta, subject string) ([]block.Entry, error) {
	var es []block.Entry
	err := a.ctrl.Read(ctx, b.Key, b.Size, func(r *block.Reader, _ string) error {
		es = r.Subject(subject)
		return nil
	})
	return es, err
}

// keyed is the newest entry of one key (a subject less its prefix) among
// the blocks scanned.
type keyed struct {
	key   string
	entry block.Entry
}

// keyScan is a scan of the keys under a subject prefix across the blocks of
// an archive, in key order, a page at a time: the keys after after that
// start with lit (a filter's literal prefix) and that match accepts (nil:
// all), each with its newest entry in the archive.
type keyScan struct {
	archive, prefix string
	after, lit      string
	match           func(key string) bool
	limit           int // keys per page, >= 1
}

// run returns the first limit keys of the scan and whether more follow.
//
// It reads the blocks one at a time and keeps the limit+1 smallest keys
// seen, so its memory is bounded by the page, not by the keys of the
// archive. That is exact: a key of the final page that a block holds is
// among that block's first limit+1 keys, since every key of the block
// before it is in the page too.
func (s *keyScan) run(ctx context.Context, a *api) ([]keyed, bool, error) {
	from := s.prefix + max(s.after, s.lit)
	var (
		page, got, spare []keyed
		err              error
	)
	a.eachBlock(s.archive, func(b index.BlockMeta) bool {
		if err = ctx.Err(); err != nil {
			return false
		}
		err = a.ctrl.Read(ctx, b.Key, b.Size, func(r *block.Reader, _ string) error {
			got = got[:0]
			for subject, es := range r.Subjects(from) {
				key, ok := strings.CutPrefix(subject, s.prefix)
				if !ok || !strings.HasPrefix(key, s.lit) {
					break
				}
				if key <= s.after || (s.match != nil && !s.match(key)) {
					continue
				}
				got = append(got, keyed{key, es[len(es)-1]})
				if len(got) > s.limit {
					break
				}
			}
			return nil
		})
		if err != nil {
			return false
		}
		page, spare = mergeKeyed(spare[:0], page, got, s.limit+1), page
		return true
	})
	if err != nil {
		return nil, false, err
	}
	if len(page) > s.limit {
		return page[:s.limit], true, nil
	}
	return page, false, nil
}

// mergeKeyed appends to out the merge of the sorted lists x and y, at most
// n keys in order; of a key in both, the newer entry stays. out must not
// share memory with x or y.
func mergeKeyed(out, x, y []keyed, n int) []keyed {
	for len(out) < n && (len(x) > 0 || len(y) > 0) {
		switch {
		case len(y) == 0 || (len(x) > 0 && x[0].key < y[0].key):
			out, x = append(out, x[0]), x[1:]
		case len(x) == 0 || y[0].key < x[0].key:
			out, y = append(out, y[0]), y[1:]
		default:
			k := x[0]
			if y[0].entry.Seq > k.entry.Seq {
				k = y[0]
			}
			out, x, y = append(out, k), x[1:], y[1:]
		}
	}
	return out
}

// literalPrefix returns the part of a subject filter before its first
// wildcard: every key the filter matches starts with it.
func literalPrefix(filter string) string {
	for i := 0; i < len(filter); i++ {
		if (filter[i] == '*' || filter[i] == '>') && (i == 0 || filter[i-1] == '.') &&
			(i+1 == len(filter) || filter[i+1] == '.') {
			return filter[:i]
		}
	}
	return filter
}

// batch sends the messages of one reply batch to the requester, flushing
// the connection every flushEveryMsgs messages or flushEveryBytes bytes as
// msg.range does, so that a batch never runs far ahead of the server.
type batch struct {
	a              *api
	reply          string
	sent           int
	bytes          int64
	unflushedMsgs  int
	unflushedBytes int64
}

// fits reports whether m may be sent within maxBytes for the batch, and
// returns an error wrapping ErrTooLarge for a message over the max payload
// that would be the batch's first (what describes it).
func (b *batch) fits(m *nats.Msg, maxBytes int64, what string) (bool, error) {
	size := msgSize(m)
	if size > b.a.nc.MaxPayload() {
		if b.sent == 0 {
			return false, fmt.Errorf("%w: %s is %d bytes with its headers, over the max payload %d",
				ErrTooLarge, what, size, b.a.nc.MaxPayload())
		}
		return false, nil
	}
	return b.sent == 0 || b.bytes+size <= maxBytes, nil
}

// send publishes m to the requester.
func (b *batch) send(ctx context.Context, m *nats.Msg) error {
	size := msgSize(m)
	if err := b.a.nc.PublishMsg(withSubject(m, b.reply)); err != nil {
		return err
	}
	b.sent++
	b.bytes += size
	b.unflushedMsgs++
	b.unflushedBytes += size
	if b.unflushedMsgs >= flushEveryMsgs || b.unflushedBytes >= flushEveryBytes {
		b.unflushedMsgs, b.unflushedBytes = 0, 0
		if err := b.a.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("flush of a batch: %w", err)
		}
	}
	return nil
}

// endOfList is the message that ends a kv.keys or obj.list batch.
func endOfList(more bool, lastKey string) *nats.Msg {
	h := nats.Header{}
	h.Set(client.HeaderStatus, client.StatusEndOfBatch)
	h.Set(client.HeaderDescription, "EOB")
	h.Set(client.HeaderMore, strconv.FormatBool(more))
	h.Set(client.HeaderLastKey, lastKey)
	return &nats.Msg{Header: h}
}
