package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

// peerObject is an object a peer serves: 10 chunks of 100 bytes.
type peerObject struct {
	data []byte
	info jetstream.ObjectInfo
}

func newPeerObject() *peerObject {
	o := &peerObject{data: randomBytes(1000, 7)}
	o.info = jetstream.ObjectInfo{ObjectMeta: jetstream.ObjectMeta{Name: "o"}, Bucket: "O", NUID: "N1", Size: 1000, Chunks: 10,
		Digest: digest(o.data)}
	return o
}

func infoMsg(info jetstream.ObjectInfo, kv ...string) *nats.Msg {
	m := nats.NewMsg("")
	m.Data, _ = json.Marshal(info) // an ObjectInfo always encodes
	for i := 0; i+1 < len(kv); i += 2 {
		m.Header.Set(kv[i], kv[i+1])
	}
	return m
}

// batch answers an obj.get request with up to 4 chunks from its start
// chunk, then an end of batch; edit may change the messages.
func (o *peerObject) batch(t testing.TB, req *nats.Msg, edit func(n int, out []*nats.Msg) []*nats.Msg, n int) []*nats.Msg {
	r := decode[client.ObjRequest](t, req.Data)
	var out []*nats.Msg
	next := r.StartChunk
	for ; next < int(o.info.Chunks) && next < r.StartChunk+4; next++ {
		out = append(out, msgReply("OBJ_O", uint64(100+next), "$O.O.C.N1", string(o.data[next*100:(next+1)*100])))
	}
	more := strconv.FormatBool(next < int(o.info.Chunks))
	out = append(out, eob(client.HeaderObjNUID, "N1", client.HeaderNextChunk, strconv.Itoa(next),
		client.HeaderObjDigest, o.info.Digest, client.HeaderMore, more))
	if edit != nil {
		out = edit(n, out)
	}
	return out
}

func TestPeerObjectGet(t *testing.T) {
	e := newPeerEnv(t)
	ctx := context.Background()
	obs, err := e.c.ObjectStore(ctx, "O")
	if err != nil {
		t.Fatal(err)
	}
	o := newPeerObject()
	last := func(out []*nats.Msg) *nats.Msg { return out[len(out)-1] }
	for _, tc := range []struct {
		name string
		info func(*jetstream.ObjectInfo)
		edit func(n int, out []*nats.Msg) []*nats.Msg
		want error
	}{
		{"valid", nil, nil, nil},
		{"digest mismatch", func(i *jetstream.ObjectInfo) { i.Digest = digest([]byte("other")) }, func(_ int, out []*nats.Msg) []*nats.Msg {
			last(out).Header.Set(client.HeaderObjDigest, digest([]byte("other")))
			return out
		}, jetstream.ErrDigestMismatch},
		{"a byte changed", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			if n == 1 {
				out[0].Data = bytes.Clone(out[0].Data)
				out[0].Data[5] ^= 1
			}
			return out
		}, jetstream.ErrDigestMismatch},
		{"a chunk too long", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			if n == 2 {
				out[0].Data = append(bytes.Clone(out[0].Data), 'x')
			}
			return out
		}, client.ErrInvalidReply},
		{"a chunk short", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			if n == 2 {
				out[0].Data = out[0].Data[:99]
			}
			return out
		}, jetstream.ErrDigestMismatch},
		{"ends early", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			last(out).Header.Set(client.HeaderMore, "false")
			return out
		}, client.ErrInvalidReply},
		{"another nuid", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			if n == 1 {
				last(out).Header.Set(client.HeaderObjNUID, "N2")
			}
			return out
		}, client.ErrInvalidReply},
		{"another digest", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			last(out).Header.Set(client.HeaderObjDigest, digest([]byte("other")))
			return out
		}, client.ErrInvalidReply},
		{"next chunk wrong", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			last(out).Header.Set(client.HeaderNextChunk, "3")
			return out
		}, client.ErrInvalidReply},
		{"more without chunks", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			if n == 1 {
				return []*nats.Msg{eob(client.HeaderObjNUID, "N1", client.HeaderNextChunk, "4", client.HeaderMore, "true")}
			}
			return out
		}, client.ErrInvalidReply},
		{"gone in the middle", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			if n == 1 {
				return msgs(errReply("404", "chunks of o are not archived"))
			}
			return out
		}, jetstream.ErrObjectNotFound},
		{"unavailable in the middle", nil, func(n int, out []*nats.Msg) []*nats.Msg {
			if n == 2 {
				return msgs(out[0], errReply("503", "no tier could serve the block"))
			}
			return out
		}, &client.Error{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := o.info
			if tc.info != nil {
				tc.info(&info)
			}
			e.peer(t, client.ObjInfoSubject(client.DefaultPrefix, "O"), func(int, *nats.Msg) []*nats.Msg { return msgs(infoMsg(info)) })
			p := e.peer(t, client.ObjGetSubject(client.DefaultPrefix, "O"), func(n int, req *nats.Msg) []*nats.Msg {
				return o.batch(t, req, tc.edit, n)
			})
			r, err := obs.Get(ctxFor(t, 2*time.Second), "o")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// Flow control: while the reader reads the first batch, the
			// second at most is asked for.
			one := make([]byte, 1)
			if _, err := io.ReadFull(r, one); err != nil {
				t.Fatal(err)
			}
			if n := len(p.requests()); n < 1 || n > 2 {
				t.Fatalf("%d requests after one byte read", n)
			}
			rest, err := io.ReadAll(r)
			got := append(one, rest...)
			if tc.want == nil {
				if err != nil || r.Error() != nil || !bytes.Equal(got, o.data) {
					t.Fatalf("%d bytes, %v, %v", len(got), err, r.Error())
				}
				var starts []int
				for _, body := range p.requests() {
					req := decode[client.ObjRequest](t, []byte(body))
					if req.Name != "o" || req.NUID != "N1" || req.MaxBytes <= 0 {
						t.Fatalf("request %s", body)
					}
					starts = append(starts, req.StartChunk)
				}
				if !slices.Equal(starts, []int{0, 4, 8}) {
					t.Fatalf("requests from chunks %v", starts)
				}
				if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
					t.Fatalf("read after the end: %d, %v", n, err)
				}
				return
			}
			var ce *client.Error
			if errors.As(tc.want, &ce) {
				if !errors.As(err, &ce) || ce.Code != 503 {
					t.Fatalf("error %v, want nts's 503", err)
				}
			} else if !errors.Is(err, tc.want) || !errors.Is(r.Error(), tc.want) {
				t.Fatalf("error %v (Error %v), want %v", err, r.Error(), tc.want)
			}
			if n, again := r.Read(make([]byte, 10)); n != 0 || again == nil || again.Error() != err.Error() {
				t.Fatalf("read after the error: %d, %v", n, again)
			}
		})
	}
}

func TestPeerObjectInfo(t *testing.T) {
	e := newPeerEnv(t)
	ctx := context.Background()
	obs, err := e.c.ObjectStore(ctx, "O")
	if err != nil {
		t.Fatal(err)
	}
	o := newPeerObject()
	stamp := time.Unix(1700000000, 123).UTC()
	deleted, other, noNUID, link, bucketLink, loop, badStamp := o.info, o.info, o.info, o.info, o.info, o.info, o.info
	deleted.Name, deleted.Deleted = "deleted", true
	other.Name = "p"
	noNUID.Name, noNUID.NUID = "nonuid", ""
	badStamp.Name = "badstamp"
	link.Name, link.Opts = "link", &jetstream.ObjectMetaOptions{Link: &jetstream.ObjectLink{Bucket: "O", Name: "o"}}
	bucketLink.Name, bucketLink.Opts = "bucket", &jetstream.ObjectMetaOptions{Link: &jetstream.ObjectLink{Bucket: "P"}}
	loop.Name, loop.Opts = "loop", &jetstream.ObjectMetaOptions{Link: &jetstream.ObjectLink{Bucket: "O", Name: "loop"}}
	garbage := nats.NewMsg("")
	garbage.Data = []byte("[1, 2]")
	replies := map[string]*nats.Msg{
		"o": infoMsg(o.info, client.HeaderTimeStamp, stamp.Format(time.RFC3339Nano)), "deleted": infoMsg(deleted),
		"other": infoMsg(other), "nonuid": infoMsg(noNUID), "garbage": garbage, "link": infoMsg(link),
		"bucket": infoMsg(bucketLink), "loop": infoMsg(loop), "badstamp": infoMsg(badStamp, client.HeaderTimeStamp, "noon"),
	}
	e.peer(t, client.ObjInfoSubject(client.DefaultPrefix, "O"), func(_ int, req *nats.Msg) []*nats.Msg {
		if m, ok := replies[decode[client.ObjRequest](t, req.Data).Name]; ok {
			return msgs(m)
		}
		return msgs(errReply("404", "no such object"))
	})
	e.peer(t, client.ObjGetSubject(client.DefaultPrefix, "O"), func(n int, req *nats.Msg) []*nats.Msg { return o.batch(t, req, nil, n) })

	info, err := obs.GetInfo(ctx, "o")
	if err != nil || info.Name != "o" || info.NUID != "N1" || info.Size != 1000 || !info.ModTime.Equal(stamp) {
		t.Fatalf("info %+v, %v", info, err)
	}
	for _, tc := range []struct {
		name string
		want error
	}{
		{"deleted", jetstream.ErrObjectNotFound},
		{"other", client.ErrInvalidReply},
		{"nonuid", client.ErrInvalidReply},
		{"garbage", client.ErrInvalidReply},
		{"badstamp", client.ErrInvalidReply},
		{"never", jetstream.ErrObjectNotFound},
		{"", jetstream.ErrNameRequired},
	} {
		if info, err := obs.GetInfo(ctx, tc.name); !errors.Is(err, tc.want) || info != nil {
			t.Fatalf("%s: %+v, %v; want %v", tc.name, info, err, tc.want)
		}
	}
	if _, err := obs.GetInfo(ctx, "never"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("%v: JetStream has no bucket O", err)
	}
	got, err := obs.GetBytes(ctx, "link")
	if err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("through a link: %d bytes, %v", len(got), err)
	}
	if _, err := obs.Get(ctx, "bucket"); !errors.Is(err, jetstream.ErrCantGetBucket) {
		t.Fatalf("a link to a bucket: %v", err)
	}
	if _, err := obs.Get(ctx, "loop"); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("a link to itself: %v", err)
	}
	if _, err := obs.PutBytes(ctx, "o", nil); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("put: %v", err)
	}
	if err := obs.Delete(ctx, "o"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("delete: %v", err)
	}
}

func TestPeerObjectList(t *testing.T) {
	e := newPeerEnv(t)
	ctx := context.Background()
	obs, err := e.c.ObjectStore(ctx, "O")
	if err != nil {
		t.Fatal(err)
	}
	named := func(name string, deleted bool) *nats.Msg {
		i := newPeerObject().info
		i.Name, i.Deleted = name, deleted
		return infoMsg(i)
	}
	more := func(last string) *nats.Msg { return eob(client.HeaderMore, "true", client.HeaderLastKey, last) }
	for _, tc := range []struct {
		name    string
		batches [][]*nats.Msg
		want    []string
		err     error
	}{
		{"paged", [][]*nats.Msg{{named("b", false), named("a", false), more("Yg==")}, {named("x", true), named("c", false), eob()}}, []string{"a", "b", "c"}, nil},
		{"none", [][]*nats.Msg{{eob()}}, nil, jetstream.ErrNoObjectsFound},
		{"not archived", [][]*nats.Msg{{errReply("404", "bucket O is not archived")}}, nil, jetstream.ErrNoObjectsFound},
		{"a bad info", [][]*nats.Msg{{infoMsg(jetstream.ObjectInfo{}), eob()}}, nil, client.ErrInvalidReply},
		{"more going back", [][]*nats.Msg{{more("Yg==")}, {more("YQ==")}}, nil, client.ErrInvalidReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.peer(t, client.ObjListSubject(client.DefaultPrefix, "O"), func(n int, _ *nats.Msg) []*nats.Msg {
				if n < len(tc.batches) {
					return tc.batches[n]
				}
				return nil
			})
			list, err := obs.List(ctx)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || list != nil {
					t.Fatalf("got %d, %v; want %v", len(list), err, tc.err)
				}
				return
			}
			var names []string
			for _, i := range list {
				names = append(names, i.Name)
			}
			if err != nil || !slices.Equal(names, tc.want) {
				t.Fatalf("got %v, %v; want %v", names, err, tc.want)
			}
			if reqs := p.requests(); len(reqs) != 2 || decode[client.ObjListRequest](t, []byte(reqs[1])).After != "Yg==" {
				t.Fatalf("requests %q", reqs)
			}
		})
	}
}
