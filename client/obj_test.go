package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

// randomBytes returns n bytes of a seeded random sequence.
func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// objFixture is a bucket "files" with these objects:
//
//	big     5 MiB in 128 KiB chunks: more than one obj.get batch
//	small   10 KiB in 1 KiB chunks
//	empty   no chunk
//	gone    deleted (in JetStream only)
//	link    a link to small
//
// Once nts archived them, JetStream loses big's chunks, and small's chunks
// and info.
type objFixture struct {
	obs   jetstream.ObjectStore
	data  map[string][]byte
	infos map[string]*jetstream.ObjectInfo
}

// newObjFixture creates the bucket, starts e's replica, then writes.
func newObjFixture(t *testing.T, e *env) *objFixture {
	t.Helper()
	ctx := context.Background()
	obs, err := e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "files"})
	if err != nil {
		t.Fatal(err)
	}
	e.run(t)
	f := &objFixture{obs: obs, data: map[string][]byte{}, infos: map[string]*jetstream.ObjectInfo{}}
	for _, o := range []struct {
		name  string
		size  int
		chunk uint32
	}{{"big", 5 << 20, 0}, {"small", 10 << 10, 1 << 10}, {"empty", 0, 0}, {"gone", 100, 0}} {
		f.data[o.name] = randomBytes(o.size, 1)
		meta := jetstream.ObjectMeta{Name: o.name, Description: "the " + o.name + " one", Metadata: map[string]string{"k": "v"}}
		if o.chunk != 0 {
			meta.Opts = &jetstream.ObjectMetaOptions{ChunkSize: o.chunk}
		}
		if _, err := obs.Put(ctx, meta, bytes.NewReader(f.data[o.name])); err != nil {
			t.Fatal(err)
		}
		if f.infos[o.name], err = obs.GetInfo(ctx, o.name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := obs.AddLink(ctx, "link", f.infos["small"]); err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	s, err := e.js.Stream(ctx, "OBJ_files")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.waitArchived(t, "OBJ_files", info.State.LastSeq)
	for _, subj := range []string{"$O.files.C." + f.infos["big"].NUID, "$O.files.C." + f.infos["small"].NUID, "$O.files.M.c21hbGw="} {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := obs.GetInfo(ctx, "small"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("small's info still in JetStream: %v", err)
	}
	return f
}

// sameInfo checks the info the client gave against JetStream's.
func sameInfo(t testing.TB, got, want *jetstream.ObjectInfo) {
	t.Helper()
	if got == nil || got.Name != want.Name || got.Bucket != want.Bucket || got.NUID != want.NUID || got.Size != want.Size ||
		got.Chunks != want.Chunks || got.Digest != want.Digest || got.Description != want.Description ||
		got.Metadata["k"] != want.Metadata["k"] || got.Deleted {
		t.Fatalf("info %+v, want %+v", got, want)
	}
	if !got.ModTime.Equal(want.ModTime) {
		t.Errorf("%s: mtime %v, want %v", want.Name, got.ModTime, want.ModTime)
	}
}

func TestObjectStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newObjFixture(t, e)
	obs, err := e.c.ObjectStore(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	var gets atomic.Int64 // obj.get requests seen
	sub, err := e.nc.Subscribe(client.ObjGetSubject(client.DefaultPrefix, "files"), func(*nats.Msg) { gets.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	t.Run("get", func(t *testing.T) {
		for _, tc := range []struct {
			name, object string
			requests     int64 // obj.get batches, at least
		}{
			{"chunks only in the archive, in batches", "big", 2},
			{"only in the archive", "small", 1},
			{"a link to an archived object", "link", 1},
			{"empty", "empty", 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := gets.Load()
				r, err := obs.Get(ctx, tc.object)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				got, err := io.ReadAll(r)
				if err != nil || r.Error() != nil {
					t.Fatalf("read: %v, %v", err, r.Error())
				}
				target := tc.object
				if target == "link" {
					target = "small"
				}
				if !bytes.Equal(got, f.data[target]) {
					t.Fatalf("%d bytes, want %d", len(got), len(f.data[target]))
				}
				info, err := r.Info()
				if err != nil {
					t.Fatal(err)
				}
				sameInfo(t, info, f.infos[target])
				checkFor(t, time.Second, func() error {
					if n := gets.Load() - before; n < tc.requests {
						return fmt.Errorf("%d obj.get requests, want %d or more", n, tc.requests)
					}
					return nil
				})
			})
		}
		got, err := obs.GetBytes(ctx, "small")
		if err != nil || !bytes.Equal(got, f.data["small"]) {
			t.Fatalf("GetBytes: %d bytes, %v", len(got), err)
		}
		for _, name := range []string{"gone", "never"} {
			if r, err := obs.Get(ctx, name); !errors.Is(err, jetstream.ErrObjectNotFound) || r != nil {
				t.Fatalf("%s: %v, %v", name, r, err)
			}
		}
	})

	t.Run("flow control", func(t *testing.T) {
		before := gets.Load()
		r, err := obs.Get(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		// While the reader reads the first batch, the second at most is
		// asked for.
		if n := gets.Load() - before; n > 2 {
			t.Fatalf("%d obj.get requests after reading 1 MiB", n)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if _, err := io.ReadAll(r); err == nil {
			t.Fatal("read after close")
		}
	})

	t.Run("info and list", func(t *testing.T) {
		for _, name := range []string{"big", "small", "empty"} {
			info, err := obs.GetInfo(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			sameInfo(t, info, f.infos[name])
		}
		_, err := obs.GetInfo(ctx, "never")
		wantNotFound(t, err, 404, jetstream.ErrObjectNotFound)
		if _, err := obs.GetInfo(ctx, "gone"); !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Fatalf("deleted: %v", err)
		}
		list, err := obs.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, info := range list {
			names = append(names, info.Name)
			if info.Name != "link" {
				sameInfo(t, info, f.infos[info.Name])
			}
		}
		if want := []string{"big", "empty", "link", "small"}; !slices.Equal(names, want) {
			t.Fatalf("list %v, want %v", names, want)
		}
	})

	// Last: it deletes the bucket.
	t.Run("bucket gone", func(t *testing.T) {
		if err := e.js.DeleteObjectStore(ctx, "files"); err != nil {
			t.Fatal(err)
		}
		// A handle made before the bucket went reads on from the archive.
		got, err := obs.GetBytes(ctx, "small")
		if err != nil || !bytes.Equal(got, f.data["small"]) {
			t.Fatalf("small through an earlier handle: %d bytes, %v", len(got), err)
		}
		list, err := obs.List(ctx)
		if err != nil || len(list) != 4 {
			t.Fatalf("list through an earlier handle: %d objects, %v", len(list), err)
		}
		obs, err := e.c.ObjectStore(ctx, "files")
		if err != nil {
			t.Fatal(err)
		}
		if obs.JetStream() != nil {
			t.Fatal("JetStream's handle of a deleted bucket")
		}
		got, err = obs.GetBytes(ctx, "big")
		if err != nil || !bytes.Equal(got, f.data["big"]) {
			t.Fatalf("big: %d bytes, %v", len(got), err)
		}
		if _, err := obs.PutBytes(ctx, "new", []byte("x")); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("put into a deleted bucket: %v", err)
		}
		_, err = obs.GetInfo(ctx, "never")
		wantNotFound(t, err, 404, jetstream.ErrObjectNotFound, jetstream.ErrBucketNotFound)
	})
}
