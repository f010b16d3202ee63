package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// objBatchBytes bounds the chunk bytes of one obj.get batch. The reader
// holds at most two batches: the one it reads and the next.
const objBatchBytes = 4 << 20

// objectReader streams an object's chunks from nts. It asks obj.get for the
// object a batch of chunks at a time, pinned to the info's NUID, and asks
// for the next batch once the previous one has arrived and the reader has
// begun to read it: the reader holds at most the batch it reads and the
// next, and nts sends no faster than it reads (that is the flow control).
// At the end it checks the size and the SHA-256 digest against the info.
//
// It implements jetstream.ObjectResult. Read is not safe for concurrent
// use; Close may be called from any goroutine, also while Read waits. The
// slices passed to Read are the caller's.
type objectReader struct {
	// ctx bounds the whole read: io.Reader's methods take no context, so
	// the one given to Get is kept for them.
	ctx       context.Context
	info      *jetstream.ObjectInfo
	sentinels []error // of a 404 in the middle of the object
	subject   string
	b         *batches

	// The receiving side: what has arrived, in order, not yet read (chunk
	// messages, ends of batches, or the error that ended the stream).
	queue     []received
	recvNext  int    // the index of the next chunk to arrive
	recvBytes uint64 // the chunk bytes arrived
	batchFrom int    // the first chunk of the batch arriving
	requested int    // batches asked for
	ended     int    // batches whose end has arrived
	recvDone  bool   // the last batch's end has arrived, or an error
	// The reading side.
	reading int    // batches whose end has been read
	cur     []byte // the unread rest of the current chunk
	size    uint64 // bytes read
	sum     hash.Hash
	err     error // sticky: io.EOF at the end

	closeOnce sync.Once
}

// received is a message of obj.get, or the error that ended the stream.
type received struct {
	m   *nats.Msg
	end bool
	err error
}

// newObjectReader returns a reader of the object info describes, having
// asked for its first batch.
func (c *Client) newObjectReader(ctx context.Context, bucket string, info *jetstream.ObjectInfo, sentinels []error) (*objectReader, error) {
	b, err := c.newBatches()
	if err != nil {
		return nil, err
	}
	r := &objectReader{ctx: ctx, info: info, sentinels: sentinels, subject: ObjGetSubject(c.prefix, bucket), b: b, sum: sha256.New()}
	r.recvDone = info.Chunks == 0
	if err := r.request(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Info returns the object's info.
func (r *objectReader) Info() (*jetstream.ObjectInfo, error) { return r.info, nil }

// Error returns the error that ended the read, nil before and at a
// successful end.
func (r *objectReader) Error() error {
	if errors.Is(r.err, io.EOF) {
		return nil
	}
	return r.err
}

// Read reads the object's next bytes.
func (r *objectReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if err := r.advance(); err != nil {
			r.err = err
			r.Close()
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close ends the read and releases its subscription. Idempotent.
func (r *objectReader) Close() error {
	r.closeOnce.Do(r.b.close)
	return nil
}

// advance reads the next item of the queue, waiting for it when none has
// arrived: a chunk into r.cur, or a batch's end. It returns io.EOF at a
// verified end, or the error that ends the read.
func (r *objectReader) advance() error {
	for len(r.queue) == 0 {
		if r.recvDone {
			return r.verify()
		}
		m, err := r.b.next(r.ctx)
		if err != nil {
			return notFound(err, r.sentinels...)
		}
		r.receive(m)
	}
	r.drain()
	it := r.queue[0]
	r.queue = r.queue[1:]
	switch {
	case it.err != nil:
		return it.err
	case it.end:
		r.reading++
		return r.request()
	}
	data := it.m.Data
	r.sum.Write(data)
	r.cur = data
	r.size += uint64(len(data))
	return nil
}

// drain receives what has arrived without waiting, so that a batch's end
// is seen, and the next batch asked for, while the reader still reads the
// batch's chunks.
func (r *objectReader) drain() {
	n, _, err := r.b.sub.Pending()
	for ; err == nil && n > 0 && !r.recvDone; n-- {
		m, err := r.b.next(r.ctx)
		if err != nil {
			r.fail(notFound(err, r.sentinels...))
			return
		}
		r.receive(m)
	}
}

// receive queues a message of obj.get, checking it against what came
// before, and asks for the next batch when m ends one.
func (r *objectReader) receive(m *nats.Msg) {
	if !IsEndOfBatch(m) {
		r.recvBytes += uint64(len(m.Data))
		if r.recvNext >= int(r.info.Chunks) || r.recvBytes > r.info.Size {
			r.fail(fmt.Errorf("%w: %s: object %q: chunk %d brings %d bytes, info says %d bytes in %d chunks",
				ErrInvalidReply, r.subject, r.info.Name, r.recvNext, r.recvBytes, r.info.Size, r.info.Chunks))
			return
		}
		r.recvNext++
		r.queue = append(r.queue, received{m: m})
		return
	}
	h := m.Header
	next, err := strconv.Atoi(h.Get(HeaderNextChunk))
	more := h.Get(HeaderMore) == "true"
	bad := func(format string, args ...any) {
		r.fail(fmt.Errorf("%w: %s: object %q: %s", ErrInvalidReply, r.subject, r.info.Name, fmt.Sprintf(format, args...)))
	}
	switch {
	case h.Get(HeaderObjNUID) != r.info.NUID:
		bad("batch of nuid %q, want %q", h.Get(HeaderObjNUID), r.info.NUID)
	case h.Get(HeaderObjDigest) != "" && h.Get(HeaderObjDigest) != r.info.Digest:
		bad("batch of digest %q, info has %q", h.Get(HeaderObjDigest), r.info.Digest)
	case err != nil || next != r.recvNext:
		bad("%s %q after chunk %d", HeaderNextChunk, h.Get(HeaderNextChunk), r.recvNext)
	case more && r.recvNext == r.batchFrom:
		bad("a batch without chunks from chunk %d", r.recvNext)
	case !more && r.recvNext < int(r.info.Chunks):
		bad("ends at chunk %d of %d", r.recvNext, r.info.Chunks)
	default:
		r.ended++
		r.recvDone = !more
		r.queue = append(r.queue, received{end: true})
		if err := r.request(); err != nil {
			r.fail(err)
		}
	}
}

// request asks for the next batch when the last one asked for has arrived
// and the reader reads the one before it at the latest.
func (r *objectReader) request() error {
	if r.recvDone || r.ended != r.requested || r.requested > r.reading+1 {
		return nil
	}
	req := ObjRequest{Name: r.info.Name, NUID: r.info.NUID, StartChunk: r.recvNext, MaxBytes: objBatchBytes}
	if err := r.b.send(r.subject, req); err != nil {
		return err
	}
	r.requested++
	r.batchFrom = r.recvNext
	return nil
}

// fail queues err, which ends the stream once read up to it.
func (r *objectReader) fail(err error) {
	r.queue = append(r.queue, received{err: err})
	r.recvDone = true
}

// verify checks the object read against its info: io.EOF when it matches.
func (r *objectReader) verify() error {
	if r.size != r.info.Size {
		return fmt.Errorf("%w: object %q: %d bytes, info says %d", jetstream.ErrDigestMismatch, r.info.Name, r.size, r.info.Size)
	}
	if r.info.Size == 0 && r.info.Digest == "" {
		return io.EOF
	}
	want, err := jetstream.DecodeObjectDigest(r.info.Digest)
	if err != nil {
		return fmt.Errorf("%w: object %q: digest %q: %v", ErrInvalidReply, r.info.Name, r.info.Digest, err)
	}
	if !bytes.Equal(r.sum.Sum(nil), want) {
		return fmt.Errorf("%w: object %q", jetstream.ErrDigestMismatch, r.info.Name)
	}
	return io.EOF
}
