package service

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/index"
)

// Limits of the object store endpoints.
const (
	// defaultObjBytes is the chunk bytes of an obj.get batch when the
	// request sets no max_bytes; maxRangeBytes bounds max_bytes.
	defaultObjBytes = 8 << 20
	// defaultObjList and maxObjList bound the objects of one obj.list batch.
	defaultObjList = 1000
	maxObjList     = 10_000
)

// parseObjSubject parses "<prefix>.obj.<bucket>.<verb>".
func parseObjSubject(prefix, verb, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".obj.")
	if !ok {
		return "", badRequest("subject %q is not under %q", subject, prefix+".obj.")
	}
	bucket, rest, _ := strings.Cut(rest, ".")
	if !validBucketRe.MatchString(bucket) {
		return "", badRequest("bucket name %q is not valid (letters, digits, '-' and '_')", bucket)
	}
	if rest != verb {
		return "", badRequest("subject %q: want %s.obj.<bucket>.%s", subject, prefix, verb)
	}
	return bucket, nil
}

// objStore is one archived object store: its bucket and archive.
type objStore struct {
	bucket, archive string
}

// objArchive returns the archive of bucket's stream: its newest incarnation.
func (a *api) objArchive(bucket string) (objStore, error) {
	archive, ok := a.newestArchive("OBJ_" + bucket)
	if !ok {
		return objStore{}, fmt.Errorf("%w: object store %q is not archived", ErrNotFound, bucket)
	}
	return objStore{bucket, archive}, nil
}

// metaSubject is the subject of the info of object name, as nats.go names
// it: the name base64url-encoded with padding.
func (s objStore) metaSubject(name string) string {
	return "$O." + s.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

// chunkSubject is the subject of the chunks of the object version nuid.
func (s objStore) chunkSubject(nuid string) string { return "$O." + s.bucket + ".C." + nuid }

// objMeta is one archived info message of an object: the message (its
// payload the info's JSON as the object store wrote it), the tier that
// served it, and the info decoded.
type objMeta struct {
	msg  block.Msg
	tier string
	info jetstream.ObjectInfo
}

// readMeta reads and decodes the info message at seq of block b.
func (a *api) readMeta(ctx context.Context, s objStore, b index.BlockMeta, seq uint64) (objMeta, error) {
	m, from, err := a.ctrl.ReadMsg(ctx, b.Key, b.Size, seq)
	if err != nil {
		return objMeta{}, err
	}
	om := objMeta{msg: m, tier: from}
	if err := json.Unmarshal(m.Data, &om.info); err != nil {
		return objMeta{}, fmt.Errorf("%w: %s seq %d on %q is not an object info: %v", ErrNotFound, s.archive, seq, m.Subject, err)
	}
	return om, nil
}

// objInfo returns the newest info of object name, or with nuid set the
// newest info of that version that is not a deletion, or a 404 saying why
// there is none.
func (a *api) objInfo(ctx context.Context, s objStore, name, nuid string) (objMeta, error) {
	subject := s.metaSubject(name)
	blocks := a.candidates(s.archive, subject)
	for i := len(blocks) - 1; i >= 0; i-- {
		es, err := a.entries(ctx, blocks[i], subject)
		if err != nil {
			return objMeta{}, err
		}
		for j := len(es) - 1; j >= 0; j-- {
			om, err := a.readMeta(ctx, s, blocks[i], es[j].Seq)
			switch {
			case err != nil:
				return objMeta{}, err
			case nuid == "" && om.info.Deleted:
				return objMeta{}, fmt.Errorf("%w: object %q was deleted (info at seq %d)", ErrNotFound, name, om.msg.Seq)
			case nuid == "" || (om.info.NUID == nuid && !om.info.Deleted):
				return om, nil
			}
		}
	}
	if nuid != "" {
		return objMeta{}, fmt.Errorf("%w: object %q has no archived version %q", ErrNotFound, name, nuid)
	}
	return objMeta{}, fmt.Errorf("%w: object %q not found in %s", ErrNotFound, name, s.archive)
}

// parseObjRequest decodes and checks the body of obj.info and obj.get.
func parseObjRequest(data []byte) (client.ObjRequest, error) {
	var r client.ObjRequest
	if err := decodeBody(data, &r); err != nil {
		return r, err
	}
	switch {
	case r.Name == "":
		return r, badRequest("no object name")
	case r.NUID != "" && strings.ContainsAny(r.NUID, ".*> \t\r\n"):
		return r, badRequest("nuid %q is not a subject token", r.NUID)
	case r.StartChunk < 0:
		return r, badRequest("start_chunk %d is negative", r.StartChunk)
	case r.MaxBytes < 0:
		return r, badRequest("max_bytes %d is negative", r.MaxBytes)
	case r.MaxBytes > maxRangeBytes:
		return r, fmt.Errorf("%w: max_bytes %d is over %d", ErrTooLarge, r.MaxBytes, maxRangeBytes)
	case r.MaxBytes == 0:
		r.MaxBytes = defaultObjBytes
	}
	return r, nil
}

func (a *api) prepareObjInfo(req micro.Request) (job, error) {
	bucket, err := parseObjSubject(a.cfg.Service.Prefix, "info", req.Subject())
	if err != nil {
		return nil, err
	}
	r, err := parseObjRequest(req.Data())
	if err != nil {
		return nil, err
	}
	s, err := a.objArchive(bucket)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, reply string) error {
		om, err := a.objInfo(ctx, s, r.Name, r.NUID)
		if err != nil {
			return err
		}
		return a.sendMsg(s.archive, om.msg, om.tier, reply)
	}, nil
}

// chunk is one archived chunk of an object: its sequence and block.
type chunk struct {
	seq uint64
	blk index.BlockMeta
}

// chunks returns the archived chunks of the object version om describes, in
// order, or a 404 unless every one of them is archived.
func (a *api) chunks(ctx context.Context, s objStore, name string, om objMeta) ([]chunk, error) {
	subject := s.chunkSubject(om.info.NUID)
	var out []chunk
	for _, b := range a.candidates(s.archive, subject) {
		es, err := a.entries(ctx, b, subject)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			out = append(out, chunk{e.Seq, b})
		}
		if len(out) > int(om.info.Chunks) {
			break
		}
	}
	if len(out) != int(om.info.Chunks) {
		return nil, fmt.Errorf("%w: object %q: %d of %d chunks archived", ErrNotFound, name, min(len(out), int(om.info.Chunks)), om.info.Chunks)
	}
	return out, nil
}

func (a *api) prepareObjGet(req micro.Request) (job, error) {
	bucket, err := parseObjSubject(a.cfg.Service.Prefix, "get", req.Subject())
	if err != nil {
		return nil, err
	}
	r, err := parseObjRequest(req.Data())
	if err != nil {
		return nil, err
	}
	s, err := a.objArchive(bucket)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, reply string) error { return a.sendObject(ctx, s, r, reply) }, nil
}

// sendObject sends one batch of an object's chunks from r.StartChunk, then
// its end-of-batch message.
func (a *api) sendObject(ctx context.Context, s objStore, r client.ObjRequest, reply string) error {
	om, err := a.objInfo(ctx, s, r.Name, r.NUID)
	if err != nil {
		return err
	}
	chunks, err := a.chunks(ctx, s, r.Name, om)
	if err != nil {
		return err
	}
	if r.StartChunk > len(chunks) {
		return badRequest("start_chunk %d is past the %d chunks of object %q", r.StartChunk, len(chunks), r.Name)
	}
	b := &batch{a: a, reply: reply}
	next := r.StartChunk
	for ; next < len(chunks); next++ {
		c := chunks[next]
		m, from, err := a.ctrl.ReadMsg(ctx, c.blk.Key, c.blk.Size, c.seq)
		if err != nil {
			return err
		}
		out, err := msgReply(s.archive, m, from)
		if err != nil {
			return err
		}
		ok, err := b.fits(out, r.MaxBytes, fmt.Sprintf("chunk %d of object %q", next, r.Name))
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := b.send(ctx, out); err != nil {
			return err
		}
	}
	return a.nc.PublishMsg(withSubject(endOfObject(om.info, next, next < len(chunks)), reply))
}

// endOfObject is the message that ends an obj.get batch.
func endOfObject(info jetstream.ObjectInfo, next int, more bool) *nats.Msg {
	h := nats.Header{}
	h.Set(client.HeaderStatus, client.StatusEndOfBatch)
	h.Set(client.HeaderDescription, "EOB")
	h.Set(client.HeaderObjNUID, info.NUID)
	h.Set(client.HeaderNextChunk, strconv.Itoa(next))
	h.Set(client.HeaderObjDigest, info.Digest)
	h.Set(client.HeaderMore, strconv.FormatBool(more))
	return &nats.Msg{Header: h}
}

func (a *api) prepareObjList(req micro.Request) (job, error) {
	bucket, err := parseObjSubject(a.cfg.Service.Prefix, "list", req.Subject())
	if err != nil {
		return nil, err
	}
	var r client.ObjListRequest
	if err := decodeBody(req.Data(), &r); err != nil {
		return nil, err
	}
	switch {
	case r.MaxObjects < 0:
		return nil, badRequest("max_objects %d is negative", r.MaxObjects)
	case r.MaxObjects > maxObjList:
		return nil, fmt.Errorf("%w: max_objects %d is over %d", ErrTooLarge, r.MaxObjects, maxObjList)
	case r.MaxObjects == 0:
		r.MaxObjects = defaultObjList
	}
	s, err := a.objArchive(bucket)
	if err != nil {
		return nil, err
	}
	scan := &keyScan{archive: s.archive, prefix: "$O." + bucket + ".M.", after: r.After, limit: r.MaxObjects}
	return func(ctx context.Context, reply string) error {
		metas, more, err := scan.run(ctx, a)
		if err != nil {
			return err
		}
		b := &batch{a: a, reply: reply}
		for _, k := range metas {
			blk, ok := a.ix.Lookup(s.archive, k.entry.Seq)
			if !ok {
				return fmt.Errorf("%w: the info of object %q at seq %d expired while listing", ErrNotFound, k.key, k.entry.Seq)
			}
			om, err := a.readMeta(ctx, s, blk, k.entry.Seq)
			if err != nil {
				return err
			}
			if om.info.Deleted {
				continue
			}
			out, err := msgReply(s.archive, om.msg, om.tier)
			if err != nil {
				return err
			}
			if n := msgSize(out); n > a.nc.MaxPayload() {
				return fmt.Errorf("%w: the info of object %q is %d bytes with its headers, over the max payload %d",
					ErrTooLarge, om.info.Name, n, a.nc.MaxPayload())
			}
			if err := b.send(ctx, out); err != nil {
				return err
			}
		}
		lastKey := r.After
		if len(metas) > 0 {
			lastKey = metas[len(metas)-1].key
		}
		return a.nc.PublishMsg(withSubject(endOfList(more, lastKey), reply))
	}, nil
}
