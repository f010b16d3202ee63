package index

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of JetStream's atomic batch publish (nats-server 2.12, ADR-50).
// nats.go v1.56 has no API for it; the protocol is three headers on plain
// messages.
const (
	hdrBatchID     = "Nats-Batch-Id"       // same on every message, at most 64 characters
	hdrBatchSeq    = "Nats-Batch-Sequence" // 1, 2, ... in publish order
	hdrBatchCommit = "Nats-Batch-Commit"   // "1" on the last message
)

// write is one message of an atomic batch: a value for key, stored only if
// the key's newest revision is expect (0: the key has no message).
type write struct {
	key    string
	value  []byte
	expect uint64
}

// publishAtomic stores writes as one atomic batch: all of them, in order, or
// none. It returns the revision of the last write. If an expectation fails,
// the error satisfies isWrongLastSeq.
//
// Every message but the last is published without a reply subject (the
// server then answers nothing for it); the last carries the commit header and
// is sent as a JetStream publish, whose ack or error covers the batch. The
// messages share one connection, so the server receives them in order; a
// message lost before the commit makes the server reject the batch as
// incomplete.
func (ix *Index) publishAtomic(ctx context.Context, writes []write) (uint64, error) {
	id := rand.Text() // 26 characters
	nc := ix.js.Conn()
	for i, w := range writes {
		m := nats.NewMsg(ix.subjPre + w.key)
		m.Data = w.value
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(w.expect, 10))
		if i < len(writes)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return 0, fmt.Errorf("index: batch publish: %w", err)
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		ack, err := ix.js.PublishMsg(ctx, m)
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	return 0, fmt.Errorf("%w: empty batch", ErrInvalid)
}
