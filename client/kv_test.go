package client_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

// kvFixture is a bucket "cfg" (history 3) after these operations, each
// entry kept as JetStream stored it:
//
//	a=1 b=1 a=2 c=1 a=3 a=4 x.y=1 d=1 DEL(d) e=1 PURGE(e) e=2
//
// JetStream holds a's revisions from a=2 on (history 3). Once nts archived
// everything, JetStream loses b, d and x.y entirely (their subjects are
// purged from the stream), then c is deleted (DEL(c), in JetStream only).
type kvFixture struct {
	kv      jetstream.KeyValue
	entries map[uint64]jetstream.KeyValueEntry // by revision
	rev     map[string][]uint64                // each key's revisions
	last    uint64
}

// newKVFixture creates the bucket, starts e's replica, then writes.
func newKVFixture(t *testing.T, e *env) *kvFixture {
	t.Helper()
	ctx := context.Background()
	kv, err := e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cfg", History: 3})
	if err != nil {
		t.Fatal(err)
	}
	e.run(t)
	f := &kvFixture{kv: kv, entries: map[uint64]jetstream.KeyValueEntry{}, rev: map[string][]uint64{}}
	note := func(key string, rev uint64) {
		t.Helper()
		var entry jetstream.KeyValueEntry
		w, err := kv.Watch(ctx, key, jetstream.IncludeHistory())
		if err != nil {
			t.Fatal(err)
		}
		for en := range w.Updates() {
			if en == nil {
				break
			}
			if en.Revision() == rev {
				entry = en
			}
		}
		_ = w.Stop()
		if entry == nil {
			t.Fatalf("revision %d of %s not found", rev, key)
		}
		f.entries[rev], f.rev[key], f.last = entry, append(f.rev[key], rev), rev
		e.waitArchived(t, "KV_cfg", rev) // before JetStream drops it
	}
	put := func(key, value string) {
		t.Helper()
		rev, err := kv.PutString(ctx, key, value)
		if err != nil {
			t.Fatal(err)
		}
		note(key, rev)
	}
	marker := func(key string, purge bool) {
		t.Helper()
		f.last++ // a marker is the bucket's next revision
		if purge {
			err = kv.Purge(ctx, key)
		} else {
			err = kv.Delete(ctx, key)
		}
		if err != nil {
			t.Fatal(err)
		}
		note(key, f.last)
	}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "1"}, {"a", "2"}, {"c", "1"}, {"a", "3"}, {"a", "4"}, {"x.y", "1"}, {"d", "1"}} {
		put(kv[0], kv[1])
	}
	marker("d", false)
	put("e", "1")
	marker("e", true)
	put("e", "2")
	s, err := e.js.Stream(ctx, "KV_cfg")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"b", "d", "x.y"} {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject("$KV.cfg."+key)); err != nil {
			t.Fatal(err)
		}
	}
	marker("c", false)
	return f
}

// sameEntry checks got against JetStream's entry want.
func sameEntry(t testing.TB, got, want jetstream.KeyValueEntry) {
	t.Helper()
	if got == nil {
		t.Fatalf("no entry, want revision %d of %s", want.Revision(), want.Key())
	}
	if got.Bucket() != want.Bucket() || got.Key() != want.Key() || got.Revision() != want.Revision() ||
		!bytes.Equal(got.Value(), want.Value()) || !got.Created().Equal(want.Created()) || got.Operation() != want.Operation() {
		t.Fatalf("entry %s/%s rev %d %q %v %v; want %s/%s rev %d %q %v %v",
			got.Bucket(), got.Key(), got.Revision(), got.Value(), got.Created(), got.Operation(),
			want.Bucket(), want.Key(), want.Revision(), want.Value(), want.Created(), want.Operation())
	}
}

func TestKeyValue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newKVFixture(t, e)
	kv, err := e.c.KeyValue(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	newest := func(key string) jetstream.KeyValueEntry { r := f.rev[key]; return f.entries[r[len(r)-1]] }

	t.Run("get", func(t *testing.T) {
		for _, key := range []string{"a", "e"} { // in JetStream
			got, err := kv.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			sameEntry(t, got, newest(key))
		}
		for _, key := range []string{"b", "x.y"} { // only in the archive
			got, err := kv.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			sameEntry(t, got, newest(key))
			if got.Delta() != 0 {
				t.Fatalf("%s: delta %d", key, got.Delta())
			}
		}
		// c: deleted in JetStream, put in the archive; d: deleted, only in
		// the archive; z: never.
		for _, key := range []string{"c", "d", "z"} {
			if got, err := kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) || got != nil {
				t.Fatalf("%s: %v, %v; want not found", key, got, err)
			}
		}
		_, err := kv.Get(ctx, "z")
		wantNotFound(t, err, 404, jetstream.ErrKeyNotFound)
	})

	t.Run("get revision", func(t *testing.T) {
		a, b := f.rev["a"], f.rev["b"]
		for _, rev := range []uint64{a[0], a[1], a[3], b[0]} {
			got, err := kv.GetRevision(ctx, f.entries[rev].Key(), rev)
			if err != nil {
				t.Fatalf("rev %d: %v", rev, err)
			}
			sameEntry(t, got, f.entries[rev])
		}
		for _, tc := range []struct {
			key string
			rev uint64
		}{
			{"a", b[0]},          // b's revision
			{"d", f.rev["d"][1]}, // a delete marker, only in the archive
			{"e", f.rev["e"][0]}, // hidden by a purge
			{"a", f.last + 100},  // never
		} {
			if got, err := kv.GetRevision(ctx, tc.key, tc.rev); !errors.Is(err, jetstream.ErrKeyNotFound) || got != nil {
				t.Fatalf("%s rev %d: %v, %v; want not found", tc.key, tc.rev, got, err)
			}
		}
	})

	t.Run("keys", func(t *testing.T) {
		for _, tc := range []struct {
			filters []string
			want    []string
		}{
			{nil, []string{"a", "b", "e", "x.y"}},
			{[]string{"x.*"}, []string{"x.y"}},
			{[]string{"a", "b", "c"}, []string{"a", "b"}},
		} {
			got, err := kv.Keys(ctx, tc.filters...)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("keys %v: %v, %v; want %v", tc.filters, got, err, tc.want)
			}
		}
		if got, err := kv.Keys(ctx, "nothing.*"); !errors.Is(err, jetstream.ErrNoKeysFound) {
			t.Fatalf("no keys: %v, %v", got, err)
		}
	})

	t.Run("history", func(t *testing.T) {
		for _, tc := range []struct {
			key  string
			want []uint64
		}{
			{"a", f.rev["a"]},     // the first revision from the archive
			{"b", f.rev["b"]},     // all from the archive
			{"d", f.rev["d"]},     // a put and its delete marker, from the archive
			{"e", f.rev["e"][1:]}, // from the purge on
			{"c", f.rev["c"]},     // a put and JetStream's delete marker
		} {
			got, err := kv.History(ctx, tc.key)
			if err != nil {
				t.Fatalf("%s: %v", tc.key, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("history of %s: %d entries, want %d", tc.key, len(got), len(tc.want))
			}
			for i, en := range got {
				sameEntry(t, en, f.entries[tc.want[i]])
				if en.Delta() != uint64(len(got)-1-i) {
					t.Fatalf("history of %s: entry %d has delta %d", tc.key, i, en.Delta())
				}
			}
		}
		_, err := kv.History(ctx, "z")
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("history of a key never put: %v", err)
		}
	})

	t.Run("writes", func(t *testing.T) {
		rev, err := kv.Put(ctx, "w", []byte("new"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := kv.Get(ctx, "w")
		if err != nil || got.Revision() != rev || string(got.Value()) != "new" {
			t.Fatalf("after a put: %v, %v", got, err)
		}
		if err := kv.Delete(ctx, "w"); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, "w"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("after a delete: %v", err)
		}
		if err := kv.Purge(ctx, "w"); err != nil {
			t.Fatal(err)
		}
		h, err := kv.History(ctx, "w")
		if err != nil || len(h) != 1 || h[0].Operation() != jetstream.KeyValuePurge {
			t.Fatalf("after a purge: %d entries, %v", len(h), err)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		if _, err := kv.Get(ctx, "a b"); !errors.Is(err, jetstream.ErrInvalidKey) {
			t.Fatalf("key with a space: %v", err)
		}
		if _, err := kv.Keys(ctx, "a.>.b"); !errors.Is(err, jetstream.ErrInvalidKey) {
			t.Fatalf("bad filter: %v", err)
		}
		if _, err := e.c.KeyValue(ctx, "a.b"); !errors.Is(err, jetstream.ErrInvalidBucketName) {
			t.Fatalf("bucket with a dot: %v", err)
		}
	})

	// Last: it deletes the bucket.
	t.Run("bucket gone", func(t *testing.T) {
		e.waitArchived(t, "KV_cfg", f.last+3) // w's three revisions
		if err := e.js.DeleteKeyValue(ctx, "cfg"); err != nil {
			t.Fatal(err)
		}
		// A handle made before the bucket went reads on from the archive.
		got, err := kv.Get(ctx, "a")
		if err != nil {
			t.Fatalf("through an earlier handle: %v", err)
		}
		sameEntry(t, got, newest("a"))
		if h, err := kv.History(ctx, "a"); err != nil || len(h) != len(f.rev["a"]) {
			t.Fatalf("history through an earlier handle: %d entries, %v", len(h), err)
		}
		if keys, err := kv.Keys(ctx); err != nil || !slices.Equal(keys, []string{"a", "b", "e", "x.y"}) {
			t.Fatalf("keys through an earlier handle: %v, %v", keys, err)
		}
		kv, err = e.c.KeyValue(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		if kv.JetStream() != nil {
			t.Fatal("JetStream's handle of a deleted bucket")
		}
		got, err = kv.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		sameEntry(t, got, newest("a"))
		if _, err := kv.Get(ctx, "c"); !errors.Is(err, jetstream.ErrKeyNotFound) || !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("a key deleted before the bucket: %v", err)
		}
		keys, err := kv.Keys(ctx)
		if err != nil || !slices.Equal(keys, []string{"a", "b", "e", "x.y"}) {
			t.Fatalf("keys %v, %v", keys, err)
		}
		h, err := kv.History(ctx, "a")
		if err != nil || len(h) != len(f.rev["a"]) {
			t.Fatalf("history of a: %d entries, %v", len(h), err)
		}
		if _, err := kv.Put(ctx, "a", nil); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("put into a deleted bucket: %v", err)
		}
		var ce *client.Error
		if _, err := kv.Get(ctx, "z"); !errors.As(err, &ce) || ce.Code != 404 {
			t.Fatalf("a key never put: %v", err)
		}
	})
}
