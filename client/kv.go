package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// KeyValue reads a KV bucket from JetStream and, for what JetStream no
// longer holds, from nts; it passes writes through to JetStream. It is
// safe for concurrent use. Entries it returns belong to the caller.
type KeyValue struct {
	c      *Client
	bucket string
	kv     jetstream.KeyValue // nil when JetStream no longer has the bucket
}

// KeyValue returns the KV bucket's reader. When JetStream no longer has the
// bucket, reads come from nts alone and writes fail with
// jetstream.ErrBucketNotFound.
func (c *Client) KeyValue(ctx context.Context, bucket string) (*KeyValue, error) {
	if c.err != nil {
		return nil, c.err
	}
	if !validBucket(bucket) {
		return nil, fmt.Errorf("%w: %q", jetstream.ErrInvalidBucketName, bucket)
	}
	kv, err := c.js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return &KeyValue{c: c, bucket: bucket}, nil
	}
	if err != nil {
		return nil, err
	}
	return &KeyValue{c: c, bucket: bucket, kv: kv}, nil
}

// Bucket returns the bucket's name.
func (k *KeyValue) Bucket() string { return k.bucket }

// JetStream returns JetStream's handle of the bucket, for what KeyValue
// does not offer (watches, status, ...); nil when JetStream no longer had
// the bucket when KeyValue was called.
func (k *KeyValue) JetStream() jetstream.KeyValue { return k.kv }

// Get returns the newest entry of key. When JetStream holds no revision of
// the key, it is nts's newest archived one. A key whose newest operation
// (JetStream's when it holds one, else the archive's) is a delete or a
// purge is not found: the error wraps jetstream.ErrKeyNotFound.
func (k *KeyValue) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return k.get(ctx, key, 0)
}

// GetRevision returns revision (a stream sequence) of key: from JetStream
// when it holds it, else from nts. A revision that is a delete or purge
// marker, hidden by a later purge, or not of key is not found: the error
// wraps jetstream.ErrKeyNotFound.
func (k *KeyValue) GetRevision(ctx context.Context, key string, revision uint64) (jetstream.KeyValueEntry, error) {
	if revision == 0 {
		return nil, fmt.Errorf("%w: revision 0: revisions start at 1", ErrInvalidArgument)
	}
	return k.get(ctx, key, revision)
}

func (k *KeyValue) get(ctx context.Context, key string, revision uint64) (jetstream.KeyValueEntry, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("%w: %q", jetstream.ErrInvalidKey, key)
	}
	sentinels := []error{jetstream.ErrKeyNotFound, jetstream.ErrBucketNotFound}
	if k.kv != nil {
		var (
			e   jetstream.KeyValueEntry
			err error
		)
		if revision == 0 {
			e, err = k.kv.Get(ctx, key)
		} else {
			e, err = k.kv.GetRevision(ctx, key, revision)
		}
		err = k.c.bucketErr(ctx, "KV_"+k.bucket, err)
		if sentinels, err = fallback(err, jetstream.ErrKeyNotFound, jetstream.ErrBucketNotFound); err != nil || sentinels == nil {
			return e, err
		}
		if revision == 0 && len(sentinels) == 1 {
			// Not found: JetStream may hold the key's delete or purge
			// marker, which is newer than anything archived.
			held, err := k.holds(ctx, key)
			if err != nil {
				return nil, err
			}
			if held {
				return nil, fmt.Errorf("%w: %q is deleted", jetstream.ErrKeyNotFound, key)
			}
		}
	}
	var body any
	if revision != 0 {
		body = KVGetRequest{Revision: revision}
	}
	subject := KVGetSubject(k.c.prefix, k.bucket, key)
	reply, err := k.c.request(ctx, subject, body)
	if err != nil {
		return nil, notFound(err, sentinels...)
	}
	m, err := parseMsg(subject, reply)
	if err != nil {
		return nil, err
	}
	e, err := k.entry(subject, key, m.Sequence, reply.Header.Get(HeaderKVOperation), m)
	if err != nil {
		return nil, err
	}
	switch {
	case revision != 0 && e.revision != revision:
		return nil, fmt.Errorf("%w: %s: answered with revision %d", ErrInvalidReply, subject, e.revision)
	case e.op != jetstream.KeyValuePut:
		return nil, fmt.Errorf("%w: revision %d of %q is a %s marker", jetstream.ErrKeyNotFound, e.revision, key, e.op)
	}
	return e, nil
}

// holds reports whether JetStream holds any revision of key.
func (k *KeyValue) holds(ctx context.Context, key string) (bool, error) {
	pre := "$KV." + k.bucket + "."
	_, err := fromStream(ctx, k.c, "KV_"+k.bucket, func(s jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		if m := s.CachedInfo().Config.Mirror; m != nil {
			pre = "$KV." + strings.TrimPrefix(m.Name, "KV_") + "."
		}
		return s.GetLastMsgForSubject(ctx, pre+key)
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrMsgNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return false, nil
	}
	return false, err
}

// Put puts value under key in JetStream and returns its revision.
func (k *KeyValue) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if k.kv == nil {
		return 0, fmt.Errorf("%w: %s", jetstream.ErrBucketNotFound, k.bucket)
	}
	return k.kv.Put(ctx, key, value)
}

// Delete places a delete marker for key in JetStream.
func (k *KeyValue) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if k.kv == nil {
		return fmt.Errorf("%w: %s", jetstream.ErrBucketNotFound, k.bucket)
	}
	return k.kv.Delete(ctx, key, opts...)
}

// Purge places a purge marker for key in JetStream, which removes the
// key's earlier revisions there; History hides the archived ones too.
func (k *KeyValue) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if k.kv == nil {
		return fmt.Errorf("%w: %s", jetstream.ErrBucketNotFound, k.bucket)
	}
	return k.kv.Purge(ctx, key, opts...)
}

var (
	validBucketRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	validKeyRe    = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)
	validSearchRe = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9*]*[>]?$`)
)

// validBucket, validKey and validKeyFilter check names as JetStream's KV
// does.
func validBucket(b string) bool { return validBucketRe.MatchString(b) }

func validKey(key string) bool { return dotted(key) && validKeyRe.MatchString(key) }

func validKeyFilter(f string) bool { return dotted(f) && validSearchRe.MatchString(f) }

func dotted(s string) bool {
	return s != "" && s[0] != '.' && s[len(s)-1] != '.' && !strings.Contains(s, "..")
}
