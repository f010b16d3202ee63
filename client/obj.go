package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxLinks bounds the links Get follows from one name.
const maxLinks = 8

// ObjectStore reads an object store bucket from JetStream and, for what
// JetStream no longer holds, from nts; it passes writes through to
// JetStream. It is safe for concurrent use. Infos and readers it returns
// belong to the caller.
type ObjectStore struct {
	c      *Client
	bucket string
	obs    jetstream.ObjectStore // nil when JetStream no longer has the bucket
}

// ObjectStore returns the object store bucket's reader. When JetStream no
// longer has the bucket, reads come from nts alone and writes fail with
// jetstream.ErrBucketNotFound.
func (c *Client) ObjectStore(ctx context.Context, bucket string) (*ObjectStore, error) {
	if c.err != nil {
		return nil, c.err
	}
	if !validBucket(bucket) {
		return nil, fmt.Errorf("%w: %q", jetstream.ErrInvalidStoreName, bucket)
	}
	obs, err := c.js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return &ObjectStore{c: c, bucket: bucket}, nil
	}
	if err != nil {
		return nil, err
	}
	return &ObjectStore{c: c, bucket: bucket, obs: obs}, nil
}

// Bucket returns the bucket's name.
func (o *ObjectStore) Bucket() string { return o.bucket }

// JetStream returns JetStream's handle of the bucket, for what ObjectStore
// does not offer (watches, links, status, ...); nil when JetStream no
// longer had the bucket when ObjectStore was called.
func (o *ObjectStore) JetStream() jetstream.ObjectStore { return o.obs }

// GetInfo returns the info of object name: JetStream's when it holds the
// object's info, else the one nts archived last. A deleted object is not
// found: the error wraps jetstream.ErrObjectNotFound.
func (o *ObjectStore) GetInfo(ctx context.Context, name string) (*jetstream.ObjectInfo, error) {
	info, _, _, err := o.info(ctx, name)
	return info, err
}

// info returns the info of object name, whether JetStream gave it, and the
// sentinels a 404 of nts stands for when nts is asked for its chunks.
func (o *ObjectStore) info(ctx context.Context, name string) (*jetstream.ObjectInfo, bool, []error, error) {
	if name == "" {
		return nil, false, nil, jetstream.ErrNameRequired
	}
	sentinels := []error{jetstream.ErrObjectNotFound, jetstream.ErrBucketNotFound}
	if o.obs != nil {
		info, err := o.obs.GetInfo(ctx, name, jetstream.GetObjectInfoShowDeleted())
		err = o.c.bucketErr(ctx, "OBJ_"+o.bucket, err)
		sentinels, err = fallback(err, jetstream.ErrObjectNotFound, jetstream.ErrBucketNotFound)
		switch {
		case err != nil:
			return nil, false, nil, err
		case sentinels == nil && info.Deleted:
			return nil, false, nil, fmt.Errorf("%w: %q is deleted", jetstream.ErrObjectNotFound, name)
		case sentinels == nil:
			return info, true, []error{jetstream.ErrObjectNotFound}, nil
		}
	}
	subject := ObjInfoSubject(o.c.prefix, o.bucket)
	reply, err := o.c.request(ctx, subject, ObjRequest{Name: name})
	if err != nil {
		return nil, false, nil, notFound(err, sentinels...)
	}
	info, err := parseInfo(subject, reply.Data, reply.Header.Get(HeaderTimeStamp))
	switch {
	case err != nil:
		return nil, false, nil, err
	case info.Name != name || info.Bucket != o.bucket:
		return nil, false, nil, fmt.Errorf("%w: %s: info of %q in %q, asked for %q", ErrInvalidReply, subject, info.Name, info.Bucket, name)
	case info.Deleted:
		return nil, false, nil, fmt.Errorf("%w: %q is deleted", jetstream.ErrObjectNotFound, name)
	}
	return info, false, sentinels, nil
}

// parseInfo decodes an object info nts sent. Its modification time is the
// time stamp of the info's message when the reply has one (as JetStream's
// GetInfo sets it).
func parseInfo(subject string, data []byte, stamp string) (*jetstream.ObjectInfo, error) {
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("%w: %s: object info: %v", ErrInvalidReply, subject, err)
	}
	if info.Name == "" || info.NUID == "" || !validToken(info.NUID) {
		return nil, fmt.Errorf("%w: %s: object info with name %q, nuid %q", ErrInvalidReply, subject, info.Name, info.NUID)
	}
	if stamp != "" {
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s %q", ErrInvalidReply, subject, HeaderTimeStamp, stamp)
		}
		info.ModTime = ts
	}
	return &info, nil
}

// Get returns a reader of object name's bytes: JetStream's own when it
// holds all of the object's chunks, else one that streams them from nts a
// batch at a time as it is read and checks the object's size and SHA-256
// digest at the end (jetstream.ErrDigestMismatch). Links are followed. The
// reader is bounded by ctx; close it when done. A deleted or unknown object
// is not found: the error wraps jetstream.ErrObjectNotFound.
func (o *ObjectStore) Get(ctx context.Context, name string) (jetstream.ObjectResult, error) {
	return o.get(ctx, name, 0)
}

func (o *ObjectStore) get(ctx context.Context, name string, links int) (jetstream.ObjectResult, error) {
	info, fromJS, sentinels, err := o.info(ctx, name)
	if err != nil {
		return nil, err
	}
	if l := info.Opts; l != nil && l.Link != nil {
		switch {
		case l.Link.Name == "":
			return nil, fmt.Errorf("%w: %q links to bucket %q", jetstream.ErrCantGetBucket, name, l.Link.Bucket)
		case links >= maxLinks:
			return nil, fmt.Errorf("%w: %q: over %d links", ErrInvalidArgument, name, maxLinks)
		case l.Link.Bucket == o.bucket:
			return o.get(ctx, l.Link.Name, links+1)
		}
		other, err := o.c.ObjectStore(ctx, l.Link.Bucket)
		if err != nil {
			return nil, err
		}
		return other.get(ctx, l.Link.Name, links+1)
	}
	if fromJS {
		all, err := o.holdsChunks(ctx, info)
		if err != nil {
			return nil, err
		}
		if all {
			return o.obs.Get(ctx, name)
		}
	}
	return o.c.newObjectReader(ctx, o.bucket, info, sentinels)
}

// GetBytes returns object name's bytes, read as Get reads them.
func (o *ObjectStore) GetBytes(ctx context.Context, name string) ([]byte, error) {
	r, err := o.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// holdsChunks reports whether JetStream holds every chunk of the object.
func (o *ObjectStore) holdsChunks(ctx context.Context, info *jetstream.ObjectInfo) (bool, error) {
	if info.Chunks == 0 {
		return true, nil
	}
	subject := "$O." + o.bucket + ".C." + info.NUID
	si, err := fromStream(ctx, o.c, "OBJ_"+o.bucket, func(s jetstream.Stream) (*jetstream.StreamInfo, error) {
		return s.Info(ctx, jetstream.WithSubjectFilter(subject))
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return si.State.Subjects[subject] == uint64(info.Chunks), nil
}

// List returns the infos of the bucket's objects in name order: JetStream's
// for the objects whose info it holds, nts's for the others, without the
// deleted ones. With no object the error is jetstream.ErrNoObjectsFound.
func (o *ObjectStore) List(ctx context.Context) ([]*jetstream.ObjectInfo, error) {
	live := map[string]*jetstream.ObjectInfo{}
	if o.obs != nil {
		infos, err := o.obs.List(ctx, jetstream.ListObjectsShowDeleted())
		err = o.c.bucketErr(ctx, "OBJ_"+o.bucket, err)
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, err
		}
		for _, info := range infos {
			live[info.Name] = info
		}
	}
	var out []*jetstream.ObjectInfo
	for _, info := range live {
		if !info.Deleted {
			out = append(out, info)
		}
	}
	err := o.archivedList(ctx, func(info *jetstream.ObjectInfo) {
		if _, ok := live[info.Name]; !ok && !info.Deleted {
			out = append(out, info)
		}
	})
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	if len(out) == 0 {
		return nil, jetstream.ErrNoObjectsFound
	}
	slices.SortFunc(out, func(a, b *jetstream.ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// archivedList passes each object info nts lists to f, a batch at a time.
func (o *ObjectStore) archivedList(ctx context.Context, f func(*jetstream.ObjectInfo)) error {
	b, err := o.c.newBatches()
	if err != nil {
		return err
	}
	defer b.close()
	subject := ObjListSubject(o.c.prefix, o.bucket)
	var req ObjListRequest
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
					return fmt.Errorf("%w: %s: more objects after %q, after %q", ErrInvalidReply, subject, last, req.After)
				}
				req.After = last
				break
			}
			info, err := parseInfo(subject, m.Data, m.Header.Get(HeaderTimeStamp))
			if err != nil {
				return err
			}
			f(info)
		}
	}
}

// Put puts an object read from r into JetStream, as
// jetstream.ObjectStore.Put does.
func (o *ObjectStore) Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	if o.obs == nil {
		return nil, fmt.Errorf("%w: %s", jetstream.ErrBucketNotFound, o.bucket)
	}
	return o.obs.Put(ctx, meta, r)
}

// PutBytes puts data into JetStream as object name.
func (o *ObjectStore) PutBytes(ctx context.Context, name string, data []byte) (*jetstream.ObjectInfo, error) {
	if o.obs == nil {
		return nil, fmt.Errorf("%w: %s", jetstream.ErrBucketNotFound, o.bucket)
	}
	return o.obs.PutBytes(ctx, name, data)
}

// Delete deletes object name from JetStream; the archive keeps what it
// archived, but reads of the name find it deleted.
func (o *ObjectStore) Delete(ctx context.Context, name string) error {
	if o.obs == nil {
		return fmt.Errorf("%w: %s", jetstream.ErrBucketNotFound, o.bucket)
	}
	return o.obs.Delete(ctx, name)
}
