package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// entry is a KV entry read from nts, or one of a history merged from nts
// and JetStream. It implements jetstream.KeyValueEntry.
type entry struct {
	bucket, key string
	value       []byte
	revision    uint64
	delta       uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

func (e *entry) Bucket() string                  { return e.bucket }
func (e *entry) Key() string                     { return e.key }
func (e *entry) Value() []byte                   { return e.value }
func (e *entry) Revision() uint64                { return e.revision }
func (e *entry) Created() time.Time              { return e.created }
func (e *entry) Delta() uint64                   { return e.delta }
func (e *entry) Operation() jetstream.KeyValueOp { return e.op }

// entry turns a KV entry reply of nts into an entry of key.
func (k *KeyValue) entry(subject, key string, rev uint64, op string, m *jetstream.RawStreamMsg) (*entry, error) {
	e := &entry{bucket: k.bucket, key: key, value: m.Data, revision: rev, created: m.Time}
	switch op {
	case KVPut:
		e.op = jetstream.KeyValuePut
	case KVDel:
		e.op = jetstream.KeyValueDelete
	case KVPurge:
		e.op = jetstream.KeyValuePurge
	default:
		return nil, fmt.Errorf("%w: %s: %s %q", ErrInvalidReply, subject, HeaderKVOperation, op)
	}
	if !strings.HasSuffix(m.Subject, "."+key) {
		return nil, fmt.Errorf("%w: %s: revision %d is on %q, not key %q", ErrInvalidReply, subject, rev, m.Subject, key)
	}
	return e, nil
}

// Keys returns the bucket's keys in order, those JetStream holds and those
// only nts archived, each once, without the keys whose newest operation
// (JetStream's when it holds the key, else the archive's) is a delete or a
// purge. Filters select keys with NATS wildcards ("orders.*"); none selects
// every key. With no key the error is jetstream.ErrNoKeysFound.
func (k *KeyValue) Keys(ctx context.Context, filters ...string) ([]string, error) {
	for _, f := range filters {
		if !validKeyFilter(f) {
			return nil, fmt.Errorf("%w: key filter %q", jetstream.ErrInvalidKey, f)
		}
	}
	live, err := k.liveKeys(ctx, filters)
	if err != nil {
		return nil, err
	}
	var keys []string
	for key, put := range live {
		if put {
			keys = append(keys, key)
		}
	}
	if len(filters) == 0 {
		filters = []string{""}
	}
	for _, f := range filters {
		err := k.archivedKeys(ctx, f, func(key string) {
			if _, ok := live[key]; !ok {
				keys = append(keys, key)
			}
		})
		if err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	if len(keys) == 0 {
		return nil, jetstream.ErrNoKeysFound
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// liveKeys returns the keys JetStream holds, each with whether its newest
// operation is a put.
func (k *KeyValue) liveKeys(ctx context.Context, filters []string) (map[string]bool, error) {
	live := map[string]bool{}
	if k.kv == nil {
		return live, nil
	}
	var (
		w   jetstream.KeyWatcher
		err error
	)
	if len(filters) == 0 {
		w, err = k.kv.WatchAll(ctx, jetstream.MetaOnly())
	} else {
		// WatchFiltered rewrites the slice it is given into subjects.
		w, err = k.kv.WatchFiltered(ctx, slices.Clone(filters), jetstream.MetaOnly())
	}
	if err = k.c.bucketErr(ctx, "KV_"+k.bucket, err); errors.Is(err, jetstream.ErrBucketNotFound) {
		return live, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }() // a stop's error leaves nothing to undo
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("watch of %s ended early: %w", k.bucket, context.Cause(ctx))
			}
			if e == nil {
				return live, nil
			}
			live[e.Key()] = e.Operation() == jetstream.KeyValuePut
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// archivedKeys passes each key nts lists for filter to f, a batch at a
// time.
func (k *KeyValue) archivedKeys(ctx context.Context, filter string, f func(string)) error {
	b, err := k.c.newBatches()
	if err != nil {
		return err
	}
	defer b.close()
	subject := KVKeysSubject(k.c.prefix, k.bucket)
	req := KVKeysRequest{Filter: filter}
	for {
		if err := b.send(subject, req); err != nil {
			return err
		}
		for {
			m, err := b.next(ctx)
			if err != nil {
				return err
			}
			if IsEndOfBatch(m) {
				if m.Header.Get(HeaderMore) != "true" {
					return nil
				}
				last := m.Header.Get(HeaderLastKey)
				if last == "" || (req.After != "" && last <= req.After) {
					return fmt.Errorf("%w: %s: more keys after %q, after %q", ErrInvalidReply, subject, last, req.After)
				}
				req.After = last
				break
			}
			var page KVKeysPage
			if err := json.Unmarshal(m.Data, &page); err != nil {
				return fmt.Errorf("%w: %s: keys page: %v", ErrInvalidReply, subject, err)
			}
			for _, key := range page.Keys {
				if !validKey(key) {
					return fmt.Errorf("%w: %s: key %q", ErrInvalidReply, subject, key)
				}
				f(key)
			}
		}
	}
}

// History returns the revisions of key in order, with delete and purge
// markers: those nts archived before JetStream's oldest, then JetStream's,
// from the newest purge on (a purge hides the revisions before it). Delta
// counts the revisions after each. With no revision the error wraps
// jetstream.ErrKeyNotFound.
func (k *KeyValue) History(ctx context.Context, key string) ([]jetstream.KeyValueEntry, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("%w: %q", jetstream.ErrInvalidKey, key)
	}
	var live []jetstream.KeyValueEntry
	if k.kv != nil {
		var err error
		live, err = k.kv.History(ctx, key)
		err = k.c.bucketErr(ctx, "KV_"+k.bucket, err)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, err
		}
	}
	var all []*entry
	if len(live) == 0 || live[0].Operation() != jetstream.KeyValuePurge {
		before := uint64(math.MaxUint64)
		if len(live) > 0 {
			before = live[0].Revision()
		}
		var err error
		if all, err = k.archivedHistory(ctx, key, before); err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	for _, e := range live {
		all = append(all, &entry{bucket: k.bucket, key: key, value: e.Value(), revision: e.Revision(),
			created: e.Created(), op: e.Operation()})
	}
	for i := len(all) - 1; i > 0; i-- {
		if all[i].op == jetstream.KeyValuePurge {
			all = all[i:]
			break
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %q has no revision", jetstream.ErrKeyNotFound, key)
	}
	out := make([]jetstream.KeyValueEntry, len(all))
	for i, e := range all {
		e.delta = uint64(len(all) - 1 - i)
		out[i] = e
	}
	return out, nil
}

// archivedHistory returns the revisions of key nts archived before
// revision before, a batch at a time.
func (k *KeyValue) archivedHistory(ctx context.Context, key string, before uint64) ([]*entry, error) {
	b, err := k.c.newBatches()
	if err != nil {
		return nil, err
	}
	defer b.close()
	subject := KVHistorySubject(k.c.prefix, k.bucket, key)
	var (
		out  []*entry
		from uint64 = 1
	)
	for {
		if err := b.send(subject, KVHistoryRequest{StartRevision: from}); err != nil {
			return nil, err
		}
		for {
			m, err := b.next(ctx)
			if err != nil {
				return nil, err
			}
			if IsEndOfBatch(m) {
				last, err1 := strconv.ParseUint(m.Header.Get(HeaderLastSeq), 10, 64)
				pending, err2 := strconv.ParseUint(m.Header.Get(HeaderNumPending), 10, 64)
				switch {
				case err1 != nil || err2 != nil || (pending > 0 && last < from):
					return nil, fmt.Errorf("%w: %s: end of batch %s %q, %s %q from revision %d", ErrInvalidReply, subject,
						HeaderLastSeq, m.Header.Get(HeaderLastSeq), HeaderNumPending, m.Header.Get(HeaderNumPending), from)
				case pending == 0 || last+1 >= before:
					return out, nil
				}
				from = last + 1
				break
			}
			msg, err := parseMsg(subject, m)
			if err != nil {
				return nil, err
			}
			if msg.Sequence >= before {
				return out, nil
			}
			e, err := k.entry(subject, key, msg.Sequence, m.Header.Get(HeaderKVOperation), msg)
			if err != nil {
				return nil, err
			}
			if n := len(out); n > 0 && out[n-1].revision >= e.revision {
				return nil, fmt.Errorf("%w: %s: revision %d after %d", ErrInvalidReply, subject, e.revision, out[n-1].revision)
			}
			out = append(out, e)
		}
	}
}
