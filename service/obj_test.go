package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

// content returns n bytes of seeded random data.
func content(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// storedObject is an object as the object store held it before its stream
// was purged: its bytes, its info and the info message's payload.
type storedObject struct {
	data []byte
	info *jetstream.ObjectInfo
	meta []byte
}

// capture reads the info of name and its info message's payload from
// JetStream, and checks the info against the bytes put.
func capture(t *testing.T, e *archiveEnv, obs jetstream.ObjectStore, name string, data []byte) storedObject {
	t.Helper()
	ctx := context.Background()
	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		t.Fatalf("GetInfo(%q): %v", name, err)
	}
	s, err := e.js.Stream(ctx, "OBJ_files")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, "$O.files.M."+base64.URLEncoding.EncodeToString([]byte(name)))
	if err != nil {
		t.Fatalf("info message of %q: %v", name, err)
	}
	if info.Size != uint64(len(data)) {
		t.Fatalf("%q: info of %d bytes, %d put", name, info.Size, len(data))
	}
	checkDigest(t, name, data, info)
	return storedObject{data: data, info: info, meta: raw.Data}
}

// getObject reads object name (version nuid, if set) from obj.get a batch of
// up to maxBytes at a time, checking each batch's end, and returns its bytes
// and the number of batches, or the micro error that ended it.
func (e *archiveEnv) getObject(t *testing.T, name, nuid string, maxBytes int64, want *jetstream.ObjectInfo) ([]byte, int, error) {
	t.Helper()
	var out []byte
	next, limit := 0, maxBytes
	if limit == 0 {
		limit = 8 << 20 // the service's default
	}
	for batches := 1; ; batches++ {
		req := client.ObjRequest{Name: name, NUID: nuid, StartChunk: next, MaxBytes: maxBytes}
		msgs, end, err := e.batchOf(t, client.ObjGetSubject("nts", "files"), req)
		if err != nil {
			return nil, batches, err
		}
		var size int64
		for _, m := range msgs {
			out = append(out, m.Data...)
			size += int64(len(m.Data))
		}
		h := end.Header
		n, _ := strconv.Atoi(h.Get(client.HeaderNextChunk))
		switch {
		case h.Get(client.HeaderObjNUID) != want.NUID || h.Get(client.HeaderObjDigest) != want.Digest:
			t.Fatalf("%q: batch of nuid %q digest %q, want %q %q", name, h.Get(client.HeaderObjNUID), h.Get(client.HeaderObjDigest), want.NUID, want.Digest)
		case n != next+len(msgs):
			t.Fatalf("%q: next chunk %d after %d chunks from %d", name, n, len(msgs), next)
		case len(msgs) > 1 && size > limit:
			t.Fatalf("%q: batch of %d bytes, max %d", name, size, limit)
		}
		next, nuid = n, h.Get(client.HeaderObjNUID)
		if h.Get(client.HeaderMore) != "true" {
			if next != int(want.Chunks) {
				t.Fatalf("%q: done at chunk %d of %d", name, next, want.Chunks)
			}
			return out, batches, nil
		}
		if len(msgs) == 0 {
			t.Fatalf("%q: a batch without chunks and more to come", name)
		}
	}
}

// checkDigest checks data against the digest an object info holds.
func checkDigest(t *testing.T, name string, data []byte, info *jetstream.ObjectInfo) {
	t.Helper()
	sum := sha256.Sum256(data)
	if want := "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:]); want != info.Digest {
		t.Fatalf("%q: digest %s, info says %s", name, want, info.Digest)
	}
}

// TestObjects archives an object store of objects of every shape, an
// overwritten one and a deleted one, purges its stream from JetStream, and
// reads every object back byte for byte from obj.info, obj.get and obj.list.
func TestObjects(t *testing.T) {
	e := newArchiveEnv(t, 1<<20, 128<<10)
	ctx := context.Background()
	obs, err := e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "files"})
	if err != nil {
		t.Fatal(err)
	}
	e.start(t)
	const chunk = 128 << 10 // nats.go's default chunk size
	sizes := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one kib with spaces", 1 << 10},
		{"dir/sub/exactly.one.chunk", chunk},
		{"ünïcødé/☃ snow.dat", 1<<20 + 1},
		{"big/9 MiB.bin", 9 << 20}, // more than one batch; 64 MiB is in integration/
	}
	objects := map[string]storedObject{}
	put := func(name string, data []byte) {
		t.Helper()
		if _, err := obs.PutBytes(ctx, name, data); err != nil {
			t.Fatalf("put %q: %v", name, err)
		}
	}
	for i, o := range sizes {
		data := content(uint64(i), o.size)
		put(o.name, data)
		objects[o.name] = capture(t, e, obs, o.name, data)
	}
	// An overwritten object: its first version is archived before the
	// overwrite purges its chunks from JetStream.
	v1 := content(100, 300<<10)
	put("dir/overwritten", v1)
	old := capture(t, e, obs, "dir/overwritten", v1)
	e.waitArchived(t, "OBJ_files")
	v2 := content(101, 200<<10+7)
	put("dir/overwritten", v2)
	objects["dir/overwritten"] = capture(t, e, obs, "dir/overwritten", v2)
	// A deleted object.
	put("gone", content(102, 10<<10))
	e.waitArchived(t, "OBJ_files")
	if err := obs.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// An object alone in its blocks, to lose one of them.
	e.waitArchived(t, "OBJ_files")
	partial := content(103, 3<<20)
	put("partial", partial)
	objects["partial"] = capture(t, e, obs, "partial", partial)
	e.waitArchived(t, "OBJ_files")
	listed, err := obs.List(ctx)
	if err != nil || len(listed) != len(objects) {
		t.Fatalf("List: %d objects, %v; want %d", len(listed), err, len(objects))
	}
	e.purge(t, "OBJ_files")
	if _, err := obs.GetBytes(ctx, "empty"); err == nil {
		t.Fatal("JetStream still has the objects")
	}

	t.Run("info", func(t *testing.T) {
		for name, o := range objects {
			m, err := e.request(t, client.ObjInfoSubject("nts", "files"), client.ObjRequest{Name: name})
			if err != nil {
				t.Fatalf("obj.info %q: %v", name, err)
			}
			if !bytes.Equal(m.Data, o.meta) {
				t.Fatalf("obj.info %q: %s, want %s", name, m.Data, o.meta)
			}
			var info jetstream.ObjectInfo
			if err := json.Unmarshal(m.Data, &info); err != nil || info.NUID != o.info.NUID || info.Size != o.info.Size ||
				info.Chunks != o.info.Chunks || info.Digest != o.info.Digest || info.Name != name {
				t.Fatalf("obj.info %q: %+v, want %+v (%v)", name, info, o.info, err)
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		for name, o := range objects {
			if name == "partial" {
				continue
			}
			for _, maxBytes := range []int64{0, 300 << 10} {
				if maxBytes > 0 && o.info.Size > 4<<20 {
					continue // the default batch size already takes several
				}
				got, batches, err := e.getObject(t, name, "", maxBytes, o.info)
				if err != nil {
					t.Fatalf("obj.get %q: %v", name, err)
				}
				if !bytes.Equal(got, o.data) {
					t.Fatalf("obj.get %q: %d bytes differ from the %d put", name, len(got), len(o.data))
				}
				checkDigest(t, name, got, o.info)
				if o.info.Size > 8<<20 && batches < 2 {
					t.Fatalf("obj.get %q: %d bytes in %d batches", name, len(got), batches)
				}
			}
		}
	})

	t.Run("overwritten", func(t *testing.T) {
		got, _, err := e.getObject(t, "dir/overwritten", old.info.NUID, 0, old.info)
		if err != nil || !bytes.Equal(got, v1) {
			t.Fatalf("obj.get of the first version by nuid: %d bytes, %v", len(got), err)
		}
		m, err := e.request(t, client.ObjInfoSubject("nts", "files"), client.ObjRequest{Name: "dir/overwritten", NUID: old.info.NUID})
		if err != nil || !bytes.Equal(m.Data, old.meta) {
			t.Fatalf("obj.info of the first version: %v", err)
		}
	})

	t.Run("deleted", func(t *testing.T) {
		for _, subject := range []string{client.ObjInfoSubject("nts", "files"), client.ObjGetSubject("nts", "files")} {
			_, _, err := e.batchOf(t, subject, client.ObjRequest{Name: "gone"})
			wantCode(t, err, "404", "deleted")
		}
	})

	t.Run("list", func(t *testing.T) {
		var names []string
		var req client.ObjListRequest
		req.MaxObjects = 2
		for batches := 0; ; batches++ {
			msgs, end, err := e.batchOf(t, client.ObjListSubject("nts", "files"), req)
			if err != nil || len(msgs) > 2 || batches > 2*len(objects) {
				t.Fatalf("obj.list batch %d: %d infos, %v", batches, len(msgs), err)
			}
			for _, m := range msgs {
				var info jetstream.ObjectInfo
				if err := json.Unmarshal(m.Data, &info); err != nil {
					t.Fatal(err)
				}
				if o, ok := objects[info.Name]; !ok || !bytes.Equal(m.Data, o.meta) {
					t.Fatalf("obj.list: %s", m.Data)
				}
				names = append(names, info.Name)
			}
			if end.Header.Get(client.HeaderMore) != "true" {
				break
			}
			req.After = end.Header.Get(client.HeaderLastKey)
		}
		var want []string
		for name := range objects {
			want = append(want, name)
		}
		b64 := func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }
		slices.SortFunc(want, func(a, b string) int {
			return bytes.Compare([]byte(b64(a)), []byte(b64(b)))
		})
		if !slices.Equal(names, want) {
			t.Fatalf("obj.list: %q, want %q", names, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			subject string
			body    any
			code    string
		}{
			{"nts.obj.files.get", nil, "400"},
			{"nts.obj.files.info", `{"name": ""}`, "400"},
			{"nts.obj.files.get", `{"name": "empty", "size": 1}`, "400"},
			{"nts.obj.files.get", `{"name": "empty", "start_chunk": -1}`, "400"},
			{"nts.obj.files.get", `{"name": "empty", "nuid": "a.b"}`, "400"},
			{"nts.obj.files.get", `{"name": "one kib with spaces", "start_chunk": 2}`, "400"},
			{"nts.obj.files.get", `{"name": "empty", "max_bytes": 100000000}`, "413"},
			{"nts.obj.files.list", `{"max_objects": 20000}`, "413"},
			{"nts.obj.b!d.info", `{"name": "x"}`, "400"},
			{"nts.obj.nope.info", `{"name": "x"}`, "404"},
			{"nts.obj.files.info", `{"name": "never put"}`, "404"},
			{"nts.obj.files.get", `{"name": "empty", "nuid": "NOSUCHNUID"}`, "404"},
		} {
			t.Run(c.subject+" "+fmt.Sprint(c.body), func(t *testing.T) {
				_, _, err := e.batchOf(t, c.subject, c.body)
				wantCode(t, err, c.code)
			})
		}
	})

	// Last: it removes a block of "partial" from the index.
	t.Run("partly expired", func(t *testing.T) {
		o := objects["partial"]
		msgs, _, err := e.batchOf(t, "nts.range.OBJ_files", fmt.Sprintf(`{"subject": "$O.files.C.%s"}`, o.info.NUID))
		if err != nil || len(msgs) != int(o.info.Chunks) {
			t.Fatalf("chunks of partial: %d, %v", len(msgs), err)
		}
		mid, _ := strconv.ParseUint(msgs[len(msgs)/2].Header.Get(client.HeaderSequence), 10, 64)
		blk, ok := e.ix.Lookup("OBJ_files", mid)
		if !ok {
			t.Fatalf("no block holds seq %d", mid)
		}
		if err := e.ix.DeleteBlock(ctx, "OBJ_files", blk.FirstSeq); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 10*time.Second, func() error {
			_, _, err := e.batchOf(t, client.ObjGetSubject("nts", "files"), client.ObjRequest{Name: "partial"})
			if err == nil {
				return fmt.Errorf("obj.get of a partly expired object succeeded")
			}
			return nil
		})
		_, _, err = e.batchOf(t, client.ObjGetSubject("nts", "files"), client.ObjRequest{Name: "partial"})
		wantCode(t, err, "404", fmt.Sprintf("of %d chunks archived", o.info.Chunks))
		// The other objects are whole.
		got, _, err := e.getObject(t, "dir/overwritten", "", 0, objects["dir/overwritten"].info)
		if err != nil || !bytes.Equal(got, v2) {
			t.Fatalf("obj.get after losing a block of another object: %v", err)
		}
	})
}
