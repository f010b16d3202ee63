package perf

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

// ObjectName is the name of the object PutObjects puts.
const ObjectName = "bench object"

// Objects is one object held twice: by a live object store, where
// JetStream holds every chunk, and, once archived, by a cold one whose
// chunks JetStream no longer holds, so that the client reads them from
// the archive.
type Objects struct {
	// Size is the object's size.
	Size       int
	data       []byte
	js         jetstream.JetStream
	info       *jetstream.ObjectInfo // in the cold store
	coldBucket string
	live       jetstream.ObjectStore
	cold       *client.ObjectStore // set by Archive
}

// PutObjects creates object stores live and cold and puts the same object
// of size pseudo-random bytes (ObjectName) in both. Archive then readies
// the cold one.
func PutObjects(ctx context.Context, js jetstream.JetStream, live, cold string, size int) (*Objects, error) {
	o := &Objects{Size: size, data: make([]byte, size), js: js, coldBucket: cold}
	rng := rand.New(rand.NewPCG(uint64(size), 3))
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, size); j++ {
			o.data[j] = byte(v)
			v >>= 8
		}
	}
	for _, bucket := range []string{live, cold} {
		obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
		if err != nil {
			return nil, fmt.Errorf("create object store %s: %w", bucket, err)
		}
		if o.info, err = obs.PutBytes(ctx, ObjectName, o.data); err != nil {
			return nil, fmt.Errorf("put %d bytes in %s: %w", size, bucket, err)
		}
		if o.live == nil {
			o.live = obs
		}
	}
	return o, nil
}

// Archive waits until the nts service at prefix (client.DefaultPrefix when
// empty), which must be archiving the cold store's stream, has archived
// all of it, then purges the object's chunks from that stream and checks
// that the client reads the object back from the archive, byte for byte.
func (o *Objects) Archive(ctx context.Context, nc *nats.Conn, prefix string) error {
	stream := "OBJ_" + o.coldBucket
	s, err := o.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	if _, err := WaitArchived(ctx, nc, Target{Prefix: prefix, Stream: stream}, s.CachedInfo().State.LastSeq); err != nil {
		return err
	}
	chunks := "$O." + o.coldBucket + ".C." + o.info.NUID
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(chunks)); err != nil {
		return fmt.Errorf("purge the chunks of %s: %w", stream, err)
	}
	si, err := s.Info(ctx, jetstream.WithSubjectFilter(chunks))
	if err != nil {
		return err
	}
	if n := si.State.Subjects[chunks]; n != 0 {
		return fmt.Errorf("perf: %s still holds %d chunks after the purge", stream, n)
	}
	opts := []client.Option{client.WithJetStream(o.js)}
	if prefix != "" {
		opts = append(opts, client.WithPrefix(prefix))
	}
	if o.cold, err = client.New(nc, opts...).ObjectStore(ctx, o.coldBucket); err != nil {
		return err
	}
	got, err := o.cold.GetBytes(ctx, ObjectName)
	if err != nil {
		return fmt.Errorf("get %q from the archive: %w", ObjectName, err)
	}
	if !bytes.Equal(got, o.data) {
		return fmt.Errorf("%w: %q from the archive: %d bytes that differ from the %d put", ErrCheck, ObjectName, len(got), o.Size)
	}
	return nil
}

// Native returns a Probe that reads the object from the live store with
// jetstream's ObjectStore.Get to the end.
func (o *Objects) Native() Probe {
	return func(ctx context.Context) error {
		return o.read(func() (jetstream.ObjectResult, error) { return o.live.Get(ctx, ObjectName) })
	}
}

// Archived returns a Probe that reads the object from the cold store with
// the client's ObjectStore.Get to the end, which streams the chunks from
// nts and checks the object's digest. Call Archive first.
func (o *Objects) Archived() Probe {
	return func(ctx context.Context) error {
		return o.read(func() (jetstream.ObjectResult, error) { return o.cold.Get(ctx, ObjectName) })
	}
}

// read reads the object get returns to the end and checks its size; the
// reader checks its digest.
func (o *Objects) read(get func() (jetstream.ObjectResult, error)) error {
	r, err := get()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	if n != int64(o.Size) {
		return fmt.Errorf("%w: read %d bytes of a %d-byte object", ErrCheck, n, o.Size)
	}
	return nil
}
