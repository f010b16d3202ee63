package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/index"
)

// Limits of the KV endpoints.
const (
	// defaultKVKeys and maxKVKeys bound the keys of one kv.keys batch.
	defaultKVKeys = 10_000
	maxKVKeys     = 100_000
)

// Marks of the messages of a KV stream in the subject index (block.Msg.Mark):
// the entry's operation.
const (
	markPut   uint8 = 0
	markDel   uint8 = 1
	markPurge uint8 = 2
)

// Names and patterns of KV buckets and keys, as nats.go checks them.
var (
	validBucketRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	validKeyRe    = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)
	validFilterRe = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9*>]+$`)
)

// kvMark returns the mark of a KV stream's message from its headers: its
// KV-Operation header, or, for a marker the server wrote, its
// Nats-Marker-Reason (MaxAge and Purge are purges, Remove a delete), as
// nats.go's KV reads them; PUT otherwise.
func kvMark(h nats.Header) uint8 {
	if op := h.Get("KV-Operation"); op != "" {
		switch op {
		case client.KVDel:
			return markDel
		case client.KVPurge:
			return markPurge
		}
		return markPut
	}
	switch h.Get(jetstream.MarkerReasonHeader) {
	case "MaxAge", "Purge":
		return markPurge
	case "Remove":
		return markDel
	}
	return markPut
}

// kvOperation names a mark as HeaderKVOperation gives it.
func kvOperation(mark uint8) string {
	switch mark {
	case markDel:
		return client.KVDel
	case markPurge:
		return client.KVPurge
	}
	return client.KVPut
}

// parseKVSubject parses "<prefix>.kv.<bucket>.<verb>[.<key>]": with withKey
// the key (one or more tokens) must follow the verb, otherwise nothing.
func parseKVSubject(prefix, verb, subject string, withKey bool) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(subject, prefix+".kv.")
	if !ok {
		return "", "", badRequest("subject %q is not under %q", subject, prefix+".kv.")
	}
	bucket, rest, _ = strings.Cut(rest, ".")
	if !validBucketRe.MatchString(bucket) {
		return "", "", badRequest("bucket name %q is not valid (letters, digits, '-' and '_')", bucket)
	}
	if !withKey {
		if rest != verb {
			return "", "", badRequest("subject %q: want %s.kv.<bucket>.%s", subject, prefix, verb)
		}
		return bucket, "", nil
	}
	key, ok = strings.CutPrefix(rest, verb+".")
	if !ok {
		return "", "", badRequest("subject %q: want %s.kv.<bucket>.%s.<key>", subject, prefix, verb)
	}
	if !validKVKey(key) {
		return "", "", badRequest("key %q is not a valid KV key", key)
	}
	return bucket, key, nil
}

// validKVKey reports whether key is a KV key nats.go accepts.
func validKVKey(key string) bool {
	return key != "" && key[0] != '.' && key[len(key)-1] != '.' && !strings.Contains(key, "..") &&
		validKeyRe.MatchString(key)
}

// kvArchive returns the archive of bucket's stream: its newest incarnation.
func (a *api) kvArchive(bucket string) (string, error) {
	archive, ok := a.newestArchive("KV_" + bucket)
	if !ok {
		return "", fmt.Errorf("%w: KV bucket %q is not archived", ErrNotFound, bucket)
	}
	return archive, nil
}

// kvEntry is one archived revision of a key: its entry and block.
type kvEntry struct {
	block.Entry
	blk index.BlockMeta
}

// sendKV sends the revision e as a kv.get reply: a message reply with
// HeaderKVOperation.
func (a *api) sendKV(ctx context.Context, archive string, e kvEntry, b *batch, maxBytes int64) (bool, error) {
	m, from, err := a.ctrl.ReadMsg(ctx, e.blk.Key, e.blk.Size, e.Seq)
	if err != nil {
		return false, err
	}
	out, err := msgReply(archive, m, from)
	if err != nil {
		return false, err
	}
	out.Header.Set(client.HeaderKVOperation, kvOperation(e.Mark))
	ok, err := b.fits(out, maxBytes, fmt.Sprintf("revision %d of %q", e.Seq, m.Subject))
	if !ok || err != nil {
		return false, err
	}
	return true, b.send(ctx, out)
}

func (a *api) prepareKVGet(req micro.Request) (job, error) {
	bucket, key, err := parseKVSubject(a.cfg.Service.Prefix, "get", req.Subject(), true)
	if err != nil {
		return nil, err
	}
	var r client.KVGetRequest
	if err := decodeBody(req.Data(), &r); err != nil {
		return nil, err
	}
	archive, err := a.kvArchive(bucket)
	if err != nil {
		return nil, err
	}
	subject := "$KV." + bucket + "." + key
	return func(ctx context.Context, reply string) error {
		var (
			e   kvEntry
			err error
		)
		if r.Revision == 0 {
			e, err = a.kvLatest(ctx, archive, key, subject)
		} else {
			e, err = a.kvRevision(ctx, archive, key, subject, r.Revision)
		}
		if err != nil {
			return err
		}
		_, err = a.sendKV(ctx, archive, e, &batch{a: a, reply: reply}, math.MaxInt64)
		return err
	}, nil
}

// kvLatest returns the newest revision of key, or a 404 when it has none or
// its newest operation is a delete or a purge.
func (a *api) kvLatest(ctx context.Context, archive, key, subject string) (kvEntry, error) {
	e, found, err := a.kvNewest(ctx, archive, subject, 0, func(block.Entry) bool { return true })
	switch {
	case err != nil:
		return kvEntry{}, err
	case !found:
		return kvEntry{}, fmt.Errorf("%w: key %q not found in %s", ErrNotFound, key, archive)
	case e.Mark == markDel:
		return kvEntry{}, fmt.Errorf("%w: key %q was deleted at revision %d", ErrNotFound, key, e.Seq)
	case e.Mark == markPurge:
		return kvEntry{}, fmt.Errorf("%w: key %q was purged at revision %d", ErrNotFound, key, e.Seq)
	}
	return e, nil
}

// kvNewest returns the newest revision of subject that want accepts,
// reading the candidate blocks newest first down to the one holding floor,
// and whether there is one.
func (a *api) kvNewest(ctx context.Context, archive, subject string, floor uint64, want func(block.Entry) bool) (kvEntry, bool, error) {
	blocks := a.candidates(archive, subject)
	for i := len(blocks) - 1; i >= 0 && blocks[i].LastSeq >= floor; i-- {
		es, err := a.entries(ctx, blocks[i], subject)
		if err != nil {
			return kvEntry{}, false, err
		}
		for j := len(es) - 1; j >= 0; j-- {
			if want(es[j]) {
				return kvEntry{es[j], blocks[i]}, true, nil
			}
		}
	}
	return kvEntry{}, false, nil
}

// kvRevision returns revision rev of key, or a 404 saying why there is none:
// not archived, not a revision of the key, or hidden by a later purge.
func (a *api) kvRevision(ctx context.Context, archive, key, subject string, rev uint64) (kvEntry, error) {
	b, ok := a.ix.Lookup(archive, rev)
	if !ok {
		return kvEntry{}, fmt.Errorf("%w: revision %d of %s is not archived (never, or expired)", ErrNotFound, rev, archive)
	}
	es, err := a.entries(ctx, b, subject)
	if err != nil {
		return kvEntry{}, err
	}
	i := 0
	for i < len(es) && es[i].Seq != rev {
		i++
	}
	if i == len(es) {
		return kvEntry{}, fmt.Errorf("%w: revision %d is not a revision of key %q", ErrNotFound, rev, key)
	}
	p, purged, err := a.kvNewest(ctx, archive, subject, rev, func(e block.Entry) bool { return e.Mark == markPurge && e.Seq > rev })
	if err != nil {
		return kvEntry{}, err
	}
	if purged {
		return kvEntry{}, fmt.Errorf("%w: revision %d of key %q was purged at revision %d", ErrNotFound, rev, key, p.Seq)
	}
	return kvEntry{es[i], b}, nil
}

func (a *api) prepareKVHistory(req micro.Request) (job, error) {
	bucket, key, err := parseKVSubject(a.cfg.Service.Prefix, "history", req.Subject(), true)
	if err != nil {
		return nil, err
	}
	var r client.KVHistoryRequest
	if err := decodeBody(req.Data(), &r); err != nil {
		return nil, err
	}
	switch {
	case r.MaxMsgs < 0:
		return nil, badRequest("max_msgs %d is negative", r.MaxMsgs)
	case r.MaxMsgs > maxRangeMsgs:
		return nil, fmt.Errorf("%w: max_msgs %d is over %d", ErrTooLarge, r.MaxMsgs, maxRangeMsgs)
	case r.MaxMsgs == 0:
		r.MaxMsgs = defaultRangeMsgs
	}
	archive, err := a.kvArchive(bucket)
	if err != nil {
		return nil, err
	}
	subject := "$KV." + bucket + "." + key
	return func(ctx context.Context, reply string) error {
		return a.sendHistory(ctx, archive, key, subject, r, reply)
	}, nil
}

// sendHistory sends one batch of the revisions of key from the newest purge
// (or r.StartRevision, if later) on, then its end-of-batch message.
func (a *api) sendHistory(ctx context.Context, archive, key, subject string, r client.KVHistoryRequest, reply string) error {
	blocks := a.candidates(archive, subject)
	// The newest purge: the history starts there.
	var (
		from  uint64
		found bool
	)
	for i := len(blocks) - 1; i >= 0 && from == 0; i-- {
		es, err := a.entries(ctx, blocks[i], subject)
		if err != nil {
			return err
		}
		found = found || len(es) > 0
		for j := len(es) - 1; j >= 0; j-- {
			if es[j].Mark == markPurge {
				from = es[j].Seq
				break
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: key %q not found in %s", ErrNotFound, key, archive)
	}
	from = max(from, r.StartRevision)
	b := &batch{a: a, reply: reply}
	last, pending := from, uint64(0) // last: the last revision covered
	if from > 0 {
		last = from - 1
	}
	for i, blk := range blocks {
		if blk.LastSeq < from {
			continue
		}
		if pending > 0 {
			pending += blk.Count // an upper bound: the block may hold fewer
			continue
		}
		es, err := a.entries(ctx, blk, subject)
		if err != nil {
			return err
		}
		for j, e := range es {
			if e.Seq < from {
				continue
			}
			sent := false
			if b.sent < r.MaxMsgs {
				if sent, err = a.sendKV(ctx, archive, kvEntry{e, blk}, b, maxRangeBytes); err != nil {
					return err
				}
			}
			if !sent {
				pending = uint64(len(es) - j)
				break
			}
			last = e.Seq
		}
		if pending == 0 && i == len(blocks)-1 {
			last = max(last, blk.LastSeq)
		}
	}
	return a.nc.PublishMsg(withSubject(endOfBatch(last, pending), reply))
}

func (a *api) prepareKVKeys(req micro.Request) (job, error) {
	bucket, _, err := parseKVSubject(a.cfg.Service.Prefix, "keys", req.Subject(), false)
	if err != nil {
		return nil, err
	}
	var r client.KVKeysRequest
	if err := decodeBody(req.Data(), &r); err != nil {
		return nil, err
	}
	switch {
	case r.MaxKeys < 0:
		return nil, badRequest("max_keys %d is negative", r.MaxKeys)
	case r.MaxKeys > maxKVKeys:
		return nil, fmt.Errorf("%w: max_keys %d is over %d", ErrTooLarge, r.MaxKeys, maxKVKeys)
	case r.MaxKeys == 0:
		r.MaxKeys = defaultKVKeys
	}
	if r.Filter != "" {
		if err := validSubjectFilter(r.Filter); err != nil {
			return nil, err
		}
		if !validFilterRe.MatchString(r.Filter) {
			return nil, badRequest("key filter %q has characters no KV key has", r.Filter)
		}
	}
	archive, err := a.kvArchive(bucket)
	if err != nil {
		return nil, err
	}
	scan := &keyScan{archive: archive, prefix: "$KV." + bucket + ".", after: r.After, limit: r.MaxKeys}
	if r.Filter != "" {
		scan.lit = literalPrefix(r.Filter)
		scan.match = func(key string) bool { return subjectMatches(r.Filter, key) }
	}
	return func(ctx context.Context, reply string) error {
		keys, more, err := scan.run(ctx, a)
		if err != nil {
			return err
		}
		if err := a.sendKeys(keys, reply); err != nil {
			return err
		}
		lastKey := r.After
		if len(keys) > 0 {
			lastKey = keys[len(keys)-1].key
		}
		return a.nc.PublishMsg(withSubject(endOfList(more, lastKey), reply))
	}, nil
}

// sendKeys sends the keys whose newest operation is a put as KVKeysPage
// messages, each within the max payload.
func (a *api) sendKeys(keys []keyed, reply string) error {
	limit := a.nc.MaxPayload()
	const overhead = len(`{"keys":[]}`)
	var (
		page []string
		size = int64(overhead)
	)
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		data, err := json.Marshal(client.KVKeysPage{Keys: page})
		if err != nil {
			return err
		}
		page, size = page[:0], int64(overhead)
		return a.nc.Publish(reply, data)
	}
	for _, k := range keys {
		if k.entry.Mark != markPut {
			continue
		}
		enc, err := json.Marshal(k.key)
		if err != nil {
			return err
		}
		n := int64(len(enc) + 1)
		if int64(overhead)+n > limit {
			return fmt.Errorf("%w: key %q does not fit a message", ErrTooLarge, k.key)
		}
		if size+n > limit {
			if err := flush(); err != nil {
				return err
			}
		}
		page = append(page, k.key)
		size += n
	}
	return flush()
}
