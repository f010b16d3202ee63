package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

// kvReply is a kv.get or kv.history reply: revision rev of key in bucket B.
func kvReply(key string, rev uint64, value, op string, kv ...string) *nats.Msg {
	return msgReply("KV_B", rev, "$KV.B."+key, value, append([]string{client.HeaderKVOperation, op}, kv...)...)
}

func TestPeerKeyValue(t *testing.T) {
	e := newPeerEnv(t)
	ctx := context.Background()
	kv, err := e.c.KeyValue(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	if kv.JetStream() != nil || kv.Bucket() != "B" {
		t.Fatal("JetStream has no bucket B")
	}

	t.Run("get", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			reply *nats.Msg
			want  error
		}{
			{"put", kvReply("k", 4, "v", client.KVPut), nil},
			{"no operation", kvReply("k", 4, "v", ""), client.ErrInvalidReply},
			{"unknown operation", kvReply("k", 4, "v", "MAYBE"), client.ErrInvalidReply},
			{"another key", kvReply("other", 4, "v", client.KVPut), client.ErrInvalidReply},
			{"delete marker", kvReply("k", 4, "", client.KVDel), jetstream.ErrKeyNotFound},
			{"not found", errReply("404", "no key k"), jetstream.ErrKeyNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e.peer(t, client.KVGetSubject(client.DefaultPrefix, "B", "k"), func(int, *nats.Msg) []*nats.Msg { return msgs(tc.reply) })
				got, err := kv.Get(ctx, "k")
				if tc.want != nil {
					if !errors.Is(err, tc.want) || got != nil {
						t.Fatalf("got %v, %v; want %v", got, err, tc.want)
					}
					if tc.want == jetstream.ErrKeyNotFound && tc.reply.Header.Get(client.HeaderKVOperation) == "" &&
						!errors.Is(err, jetstream.ErrBucketNotFound) {
						t.Fatalf("%v: JetStream has no bucket B", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got.Bucket() != "B" || got.Key() != "k" || got.Revision() != 4 || string(got.Value()) != "v" ||
					got.Operation() != jetstream.KeyValuePut || got.Created().UnixNano() != 1700000000_000000004 || got.Delta() != 0 {
					t.Fatalf("entry %+v", got)
				}
			})
		}
	})

	t.Run("get revision", func(t *testing.T) {
		p := e.peer(t, client.KVGetSubject(client.DefaultPrefix, "B", "k"), func(_ int, req *nats.Msg) []*nats.Msg {
			r := decode[client.KVGetRequest](t, req.Data)
			return msgs(kvReply("k", r.Revision+1, "v", client.KVPut))
		})
		if got, err := kv.GetRevision(ctx, "k", 3); !errors.Is(err, client.ErrInvalidReply) || got != nil {
			t.Fatalf("another revision: %v, %v", got, err)
		}
		if _, err := kv.GetRevision(ctx, "k", 0); !errors.Is(err, client.ErrInvalidArgument) {
			t.Fatalf("revision 0: %v", err)
		}
		if asked := p.requests(); !slices.Equal(asked, []string{`{"revision":3}`}) {
			t.Fatalf("requests %q", asked)
		}
	})

	t.Run("keys", func(t *testing.T) {
		page := func(keys ...string) *nats.Msg {
			m := nats.NewMsg("")
			m.Data, _ = json.Marshal(client.KVKeysPage{Keys: keys}) // a struct of strings always encodes
			return m
		}
		more := func(last string) *nats.Msg { return eob(client.HeaderMore, "true", client.HeaderLastKey, last) }
		bad := nats.NewMsg("")
		bad.Data = []byte("{not json")
		for _, tc := range []struct {
			name    string
			batches [][]*nats.Msg
			want    []string
			err     error
			afters  []string
		}{
			{"paged", [][]*nats.Msg{{page("c", "a"), page("b"), more("c")}, {page("d"), eob()}}, []string{"a", "b", "c", "d"}, nil, []string{"", "c"}},
			{"none", [][]*nats.Msg{{eob(client.HeaderMore, "false")}}, nil, jetstream.ErrNoKeysFound, nil},
			{"not archived", [][]*nats.Msg{{errReply("404", "bucket B is not archived")}}, nil, jetstream.ErrNoKeysFound, nil},
			{"a page not JSON", [][]*nats.Msg{{bad, eob()}}, nil, client.ErrInvalidReply, nil},
			{"an invalid key", [][]*nats.Msg{{page("a b"), eob()}}, nil, client.ErrInvalidReply, nil},
			{"more without a last key", [][]*nats.Msg{{page("a"), eob(client.HeaderMore, "true")}}, nil, client.ErrInvalidReply, nil},
			{"more going back", [][]*nats.Msg{{page("b"), more("b")}, {page("a"), more("a")}}, nil, client.ErrInvalidReply, nil},
			{"unavailable", [][]*nats.Msg{{errReply("503", "busy")}}, nil, &client.Error{}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := e.peer(t, client.KVKeysSubject(client.DefaultPrefix, "B"), func(n int, _ *nats.Msg) []*nats.Msg {
					if n < len(tc.batches) {
						return tc.batches[n]
					}
					return nil
				})
				got, err := kv.Keys(ctx)
				var ce *client.Error
				switch {
				case tc.err == nil && (err != nil || !slices.Equal(got, tc.want)):
					t.Fatalf("got %v, %v; want %v", got, err, tc.want)
				case tc.err == nil:
				case errors.As(tc.err, &ce):
					if !errors.As(err, &ce) || ce.Code != 503 {
						t.Fatalf("error %v, want nts's 503", err)
					}
				case !errors.Is(err, tc.err) || got != nil:
					t.Fatalf("got %v, %v; want %v", got, err, tc.err)
				}
				if tc.afters != nil {
					var afters []string
					for _, body := range p.requests() {
						afters = append(afters, decode[client.KVKeysRequest](t, []byte(body)).After)
					}
					if !slices.Equal(afters, tc.afters) {
						t.Fatalf("requests after %q, want %q", afters, tc.afters)
					}
				}
			})
		}
	})

	t.Run("history", func(t *testing.T) {
		end := func(last, pending uint64) *nats.Msg { return rangeEnd(last, pending) }
		for _, tc := range []struct {
			name    string
			batches [][]*nats.Msg
			want    []uint64
			err     error
		}{
			{"paged", [][]*nats.Msg{{kvReply("k", 1, "a", client.KVPut), kvReply("k", 3, "", client.KVDel), end(5, 9)},
				{kvReply("k", 7, "b", client.KVPut), end(9, 0)}}, []uint64{1, 3, 7}, nil},
			{"from a purge", [][]*nats.Msg{{kvReply("k", 1, "a", client.KVPut), kvReply("k", 2, "", client.KVPurge),
				kvReply("k", 3, "b", client.KVPut), end(3, 0)}}, []uint64{2, 3}, nil},
			{"none", [][]*nats.Msg{{end(0, 0)}}, nil, jetstream.ErrKeyNotFound},
			{"revisions out of order", [][]*nats.Msg{{kvReply("k", 3, "a", client.KVPut), kvReply("k", 2, "a", client.KVPut), end(3, 0)}}, nil, client.ErrInvalidReply},
			{"no progress", [][]*nats.Msg{{end(0, 3)}}, nil, client.ErrInvalidReply},
			{"another key", [][]*nats.Msg{{kvReply("j", 1, "a", client.KVPut), end(1, 0)}}, nil, client.ErrInvalidReply},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := e.peer(t, client.KVHistorySubject(client.DefaultPrefix, "B", "k"), func(n int, _ *nats.Msg) []*nats.Msg {
					if n < len(tc.batches) {
						return tc.batches[n]
					}
					return nil
				})
				got, err := kv.History(ctx, "k")
				if tc.err != nil {
					if !errors.Is(err, tc.err) || got != nil {
						t.Fatalf("got %d entries, %v; want %v", len(got), err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var revs []uint64
				for i, en := range got {
					revs = append(revs, en.Revision())
					if en.Delta() != uint64(len(got)-1-i) || en.Key() != "k" {
						t.Fatalf("entry %d: key %q delta %d", i, en.Key(), en.Delta())
					}
				}
				if !slices.Equal(revs, tc.want) {
					t.Fatalf("revisions %v, want %v", revs, tc.want)
				}
				if tc.name == "paged" {
					if starts := p.requests(); len(starts) != 2 || decode[client.KVHistoryRequest](t, []byte(starts[1])).StartRevision != 6 {
						t.Fatalf("requests %q", starts)
					}
				}
			})
		}
	})

	t.Run("writes", func(t *testing.T) {
		if _, err := kv.Put(ctx, "k", []byte("v")); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("put: %v", err)
		}
		if err := kv.Delete(ctx, "k"); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("delete: %v", err)
		}
		if err := kv.Purge(ctx, "k"); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatalf("purge: %v", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		e.peer(t, client.KVHistorySubject(client.DefaultPrefix, "B", "slow"), func(int, *nats.Msg) []*nats.Msg {
			return msgs(kvReply("slow", 1, "a", client.KVPut)) // and no end
		})
		start := time.Now()
		_, err := kv.History(ctxFor(t, 300*time.Millisecond), "slow")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
	})
}
