package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// archiveEnv is a NATS server and, once started, one nts replica archiving
// every stream into file and dir:// blob tiers.
type archiveEnv struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg service.Config
	ix  *index.Index // the replica's index bucket, read apart from it
}

// newArchiveEnv starts NATS; blocks of the replica it will start seal at
// target raw bytes, in frames of frame bytes.
func newArchiveEnv(t *testing.T, target, frame int) *archiveEnv {
	t.Helper()
	srv := testenv.RunNATS(t)
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c := service.Config{DataDir: t.TempDir()}
	c.NATS.URL = srv.ClientURL()
	off := false
	c.Tiers.Memory.Enabled = &off
	c.Block.TargetSize = service.Size(target)
	c.Block.FrameSize = service.Size(frame)
	c.Block.MaxLinger = service.Duration(100 * time.Millisecond)
	c.Service.RequestTimeout = service.Duration(20 * time.Second)
	c.Complete()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &archiveEnv{srv: srv, nc: nc, js: js, cfg: c}
}

// start runs the replica until the test ends.
func (e *archiveEnv) start(t *testing.T) {
	t.Helper()
	runReplica(t, e.cfg, nil)
	// The replica answers once it has opened the index.
	checkFor(t, 10*time.Second, func() error {
		_, err := e.nc.Request("nts.streams", nil, time.Second)
		return err
	})
	ix, err := index.Open(t.Context(), e.js, index.Options{Bucket: e.cfg.Index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	e.ix = ix
	t.Cleanup(func() { e.ix.Close() })
}

// waitArchived waits until stream is archived up to its last sequence and
// the replica's view holds it, and returns that sequence.
func (e *archiveEnv) waitArchived(t *testing.T, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	last := s.CachedInfo().State.LastSeq
	if err := e.ix.WaitFor(ctx, stream, last); err != nil {
		t.Fatalf("%s not archived up to %d: %v", stream, last, err)
	}
	checkFor(t, 10*time.Second, func() error {
		var st service.StreamInfo
		m, err := e.nc.Request("nts.stream."+stream, nil, 10*time.Second)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(m.Data, &st); err != nil || st.LastSeq < last {
			return fmt.Errorf("replica's view of %s ends at %d, want %d (%v)", stream, st.LastSeq, last, err)
		}
		return nil
	})
	return last
}

// purge drops every message of stream from JetStream.
func (e *archiveEnv) purge(t *testing.T, stream string) {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("%s after purge: %+v, %v", stream, info, err)
	}
}

// replyError returns the micro error m carries, or nil.
func replyError(m *nats.Msg) error {
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Errorf("%s: %s", code, m.Header.Get(micro.ErrorHeader))
	}
	return nil
}

// request sends one request and returns its single reply or its error.
func (e *archiveEnv) request(t testing.TB, subject string, body any) (*nats.Msg, error) {
	t.Helper()
	data := encodeBody(t, body)
	m, err := e.nc.Request(subject, data, 20*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return m, replyError(m)
}

func encodeBody(t testing.TB, body any) []byte {
	t.Helper()
	switch b := body.(type) {
	case nil:
		return nil
	case string:
		return []byte(b)
	}
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// batchOf sends a request answered by a batch and returns the batch's
// messages and its end-of-batch message, or the micro error that ended it.
func (e *archiveEnv) batchOf(t testing.TB, subject string, body any) ([]*nats.Msg, *nats.Msg, error) {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := e.nc.PublishRequest(subject, inbox, encodeBody(t, body)); err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for {
		m, err := sub.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("%s: after %d messages: %v", subject, len(msgs), err)
		}
		if err := replyError(m); err != nil {
			return msgs, nil, err
		}
		if client.IsEndOfBatch(m) {
			return msgs, m, nil
		}
		if int64(len(m.Data)) > e.nc.MaxPayload() {
			t.Fatalf("%s: message of %d bytes over the max payload", subject, len(m.Data))
		}
		msgs = append(msgs, m)
	}
}

// call is one request of a pipeline and what came back: its messages up to
// an end-of-batch message (batch) or its one reply, or its micro error.
type call struct {
	subject string
	body    any
	batch   bool

	msgs []*nats.Msg
	end  *nats.Msg
	err  error
}

// pipeline sends the calls, up to window at a time, through one
// subscription, and fills in what each got back.
func (e *archiveEnv) pipeline(t testing.TB, calls []*call, window int) {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox + ".*")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	next, done := 0, 0
	send := func() {
		c := calls[next]
		if err := e.nc.PublishRequest(c.subject, inbox+"."+strconv.Itoa(next), encodeBody(t, c.body)); err != nil {
			t.Fatal(err)
		}
		next++
	}
	for next < len(calls) && next < window {
		send()
	}
	for done < len(calls) {
		m, err := sub.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("pipeline: %d of %d calls done: %v", done, len(calls), err)
		}
		i, err := strconv.Atoi(m.Subject[len(inbox)+1:])
		if err != nil || i >= next {
			t.Fatalf("reply on %q", m.Subject)
		}
		c := calls[i]
		switch {
		case c.end != nil || c.err != nil || (!c.batch && len(c.msgs) > 0):
			t.Fatalf("%s: a message after the end", c.subject)
		case replyError(m) != nil:
			c.err = replyError(m)
		case c.batch && client.IsEndOfBatch(m):
			c.end = m
		default:
			c.msgs = append(c.msgs, m)
			if c.batch {
				continue
			}
		}
		done++
		if next < len(calls) {
			send()
		}
	}
}

// wantCode checks err is a micro error with code whose description holds
// each of words.
func wantCode(t testing.TB, err error, code string, words ...string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), code+": ") {
		t.Fatalf("error %v, want %s", err, code)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not say %q", err, w)
		}
	}
}

// kvRev is one revision of a key as JetStream answered it.
type kvRev struct {
	rev   uint64
	op    string
	value string
	time  time.Time
}

func opName(op jetstream.KeyValueOp) string {
	switch op {
	case jetstream.KeyValueDelete:
		return client.KVDel
	case jetstream.KeyValuePurge:
		return client.KVPurge
	}
	return client.KVPut
}

// kvKey is the i-th key of TestKV's bucket.
func kvKey(i int) string { return fmt.Sprintf("g%d.k%05d", i%8, i) }

// kvPuts fills bucket with nkeys keys: every key put, a third updated, a
// ninth updated twice, a key "hot" updated about 57 times across the run,
// and "hotter" about 100 times, more than the bucket's history keeps.
func kvPuts(t *testing.T, js jetstream.JetStream, kv jetstream.KeyValue, nkeys int) {
	t.Helper()
	key := kvKey
	pubs := 0
	settle := func() {
		t.Helper()
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("async puts not acknowledged")
		}
	}
	put := func(k, v string) {
		t.Helper()
		if pubs%1000 == 999 {
			settle()
		}
		// kv.Put publishes the value to the key's subject; asynchronously
		// here, to fill the bucket fast.
		if _, err := js.PublishAsync("$KV."+kv.Bucket()+"."+k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		pubs++
		for _, h := range []struct {
			key   string
			every int
		}{{"hot", 250}, {"hotter", 140}} {
			if pubs%h.every == 0 {
				if _, err := js.PublishAsync("$KV."+kv.Bucket()+"."+h.key, []byte(fmt.Sprintf("%s-%d", h.key, pubs))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for round := range 3 {
		for i := range nkeys {
			if round == 0 || (round == 1 && i%3 == 0) || (round == 2 && i%9 == 0) {
				put(key(i), fmt.Sprintf("value of %s in round %d", key(i), round))
			}
		}
	}
	settle()
}

// kvRemovals deletes 1 key in 50 (1 in 200 put again after) and purges 1
// in 97 (half of those put again after).
func kvRemovals(t *testing.T, kv jetstream.KeyValue, nkeys int) {
	t.Helper()
	ctx := context.Background()
	key := kvKey
	for i := range nkeys {
		var err error
		switch {
		case i%50 == 1:
			err = kv.Delete(ctx, key(i))
			if err == nil && i%200 == 1 {
				_, err = kv.PutString(ctx, key(i), "back after delete")
			}
		case i%97 == 2:
			err = kv.Purge(ctx, key(i))
			if err == nil && i%2 == 0 {
				_, err = kv.PutString(ctx, key(i), "back after purge")
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// kvCapture is what JetStream answered about a bucket: every key's
// revisions (from its newest purge on, as JetStream keeps them), and the
// keys it lists.
type kvCapture struct {
	history map[string][]kvRev
	keys    []string
}

// captureKV reads the bucket with a watch of every key with history (what
// kv.History does per key), checks a sample of keys with kv.Get and
// kv.History, and lists the keys with kv.ListKeys.
func captureKV(t *testing.T, kv jetstream.KeyValue) kvCapture {
	t.Helper()
	ctx := context.Background()
	c := kvCapture{history: map[string][]kvRev{}}
	w, err := kv.WatchAll(ctx, jetstream.IncludeHistory())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil {
			break
		}
		c.history[e.Key()] = append(c.history[e.Key()], kvRev{e.Revision(), opName(e.Operation()), string(e.Value()), e.Created()})
	}
	n := 0
	for key, revs := range c.history {
		if n++; n > 150 && key != "hot" {
			continue
		}
		hist, err := kv.History(ctx, key)
		if err != nil || len(hist) != len(revs) {
			t.Fatalf("History(%s): %d entries, %v; the watch saw %d", key, len(hist), err, len(revs))
		}
		for i, e := range hist {
			if e.Revision() != revs[i].rev || opName(e.Operation()) != revs[i].op {
				t.Fatalf("History(%s)[%d] = %d %v, the watch saw %+v", key, i, e.Revision(), e.Operation(), revs[i])
			}
		}
		last := revs[len(revs)-1]
		got, err := kv.Get(ctx, key)
		switch {
		case last.op == client.KVPut && (err != nil || got.Revision() != last.rev || string(got.Value()) != last.value):
			t.Fatalf("Get(%s) = %v, %v; the watch saw %+v", key, got, err, last)
		case last.op != client.KVPut && err == nil:
			t.Fatalf("Get(%s) of a deleted key: %v", key, got)
		}
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range lister.Keys() {
		c.keys = append(c.keys, k)
	}
	slices.Sort(c.keys)
	return c
}

// checkEntry checks a kv.get or kv.history reply against a revision of key.
func checkEntry(t testing.TB, m *nats.Msg, key string, want kvRev) {
	t.Helper()
	h := m.Header
	ts, err := time.Parse(time.RFC3339Nano, h.Get(client.HeaderTimeStamp))
	switch {
	case h.Get(client.HeaderSequence) != strconv.FormatUint(want.rev, 10):
		t.Fatalf("%s: revision %s, want %d", key, h.Get(client.HeaderSequence), want.rev)
	case h.Get(client.HeaderKVOperation) != want.op:
		t.Fatalf("%s rev %d: operation %q, want %q", key, want.rev, h.Get(client.HeaderKVOperation), want.op)
	case string(m.Data) != want.value:
		t.Fatalf("%s rev %d: value %q, want %q", key, want.rev, m.Data, want.value)
	case h.Get(client.HeaderSubject) != "$KV.B."+key || h.Get(client.HeaderStream) != "KV_B":
		t.Fatalf("%s rev %d: subject %q, stream %q", key, want.rev, h.Get(client.HeaderSubject), h.Get(client.HeaderStream))
	case err != nil || !ts.Equal(want.time):
		t.Fatalf("%s rev %d: time %q, want %v (%v)", key, want.rev, h.Get(client.HeaderTimeStamp), want.time, err)
	}
}

// TestKV archives a KV bucket of 10k keys with history, deletes and purges,
// purges its stream from JetStream, and checks that every kv.get, kv.keys
// and kv.history answer equals what JetStream answered before.
func TestKV(t *testing.T) {
	const nkeys = 10_000
	e := newArchiveEnv(t, 64<<10, 4<<10)
	ctx := context.Background()
	kv, err := e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "B", History: 64})
	if err != nil {
		t.Fatal(err)
	}
	// The replica follows the bucket as it is written: it archives the
	// revisions that deletes and purges later hide, and JetStream drops.
	e.start(t)
	kvPuts(t, e.js, kv, nkeys)
	e.waitArchived(t, "KV_B")
	kvRemovals(t, kv, nkeys)
	last := e.waitArchived(t, "KV_B")
	want := captureKV(t, kv)
	if len(want.history) != nkeys+2 || len(want.history["hot"]) < 50 || len(want.history["hotter"]) != 64 {
		t.Fatalf("captured %d keys, hot has %d revisions", len(want.history), len(want.history["hot"]))
	}
	e.purge(t, "KV_B")
	if _, err := kv.Get(ctx, "hot"); err == nil {
		t.Fatal("JetStream still has the bucket's data")
	}
	var sum service.StreamInfo
	if m, err := e.request(t, "nts.stream.KV_B", nil); err != nil || json.Unmarshal(m.Data, &sum) != nil || sum.Blocks < 5 || sum.LastSeq != last {
		t.Fatalf("archive of KV_B: %+v, %v", sum, err)
	}
	keys := make([]string, 0, len(want.history))
	for key := range want.history {
		keys = append(keys, key)
	}
	slices.Sort(keys)

	t.Run("get", func(t *testing.T) {
		calls := make([]*call, len(keys))
		for i, key := range keys {
			calls[i] = &call{subject: client.KVGetSubject("nts", "B", key)}
		}
		e.pipeline(t, calls, 16)
		for i, key := range keys {
			revs := want.history[key]
			latest, c := revs[len(revs)-1], calls[i]
			switch latest.op {
			case client.KVPut:
				if c.err != nil {
					t.Fatalf("kv.get %s: %v", key, c.err)
				}
				checkEntry(t, c.msgs[0], key, latest)
			case client.KVDel:
				wantCode(t, c.err, "404", fmt.Sprintf("deleted at revision %d", latest.rev))
			case client.KVPurge:
				wantCode(t, c.err, "404", fmt.Sprintf("purged at revision %d", latest.rev))
			}
		}
	})

	t.Run("history", func(t *testing.T) {
		calls := make([]*call, len(keys))
		for i, key := range keys {
			calls[i] = &call{subject: client.KVHistorySubject("nts", "B", key), batch: true}
		}
		e.pipeline(t, calls, 16)
		for i, key := range keys {
			revs, c := want.history[key], calls[i]
			if key == "hotter" {
				// JetStream kept the newest 64 revisions, the archive all.
				if c.err != nil || len(c.msgs) < 100 {
					t.Fatalf("kv.history %s: %d entries, %v", key, len(c.msgs), c.err)
				}
				c.msgs = c.msgs[len(c.msgs)-len(revs):]
			}
			if c.err != nil || len(c.msgs) != len(revs) || c.end.Header.Get(client.HeaderNumPending) != "0" {
				t.Fatalf("kv.history %s: %d entries, %v; want %d", key, len(c.msgs), c.err, len(revs))
			}
			for j, m := range c.msgs {
				checkEntry(t, m, key, revs[j])
			}
		}
	})

	t.Run("history paged", func(t *testing.T) {
		revs := want.history["hot"]
		var got []*nats.Msg
		from := uint64(0)
		for pages := 0; ; pages++ {
			msgs, end, err := e.batchOf(t, client.KVHistorySubject("nts", "B", "hot"), client.KVHistoryRequest{StartRevision: from, MaxMsgs: 7})
			if err != nil || len(msgs) > 7 || pages > len(revs) {
				t.Fatalf("page %d: %d entries, %v", pages, len(msgs), err)
			}
			got = append(got, msgs...)
			lastSeq, _ := strconv.ParseUint(end.Header.Get(client.HeaderLastSeq), 10, 64)
			if end.Header.Get(client.HeaderNumPending) == "0" {
				break
			}
			if lastSeq < from || len(msgs) != 7 {
				t.Fatalf("page %d from %d: last seq %d after %d entries", pages, from, lastSeq, len(msgs))
			}
			from = lastSeq + 1
		}
		if len(got) != len(revs) {
			t.Fatalf("%d entries in pages, want %d", len(got), len(revs))
		}
		for i, m := range got {
			checkEntry(t, m, "hot", revs[i])
		}
	})

	t.Run("revision", func(t *testing.T) {
		var calls []*call
		var wantRevs []kvRev
		var wantKeys []string
		for i, key := range keys {
			if revs := want.history[key]; i%3 == 0 && (len(revs) > 1 || revs[0].op != client.KVPut) {
				for _, r := range revs {
					calls = append(calls, &call{subject: client.KVGetSubject("nts", "B", key), body: client.KVGetRequest{Revision: r.rev}})
					wantRevs, wantKeys = append(wantRevs, r), append(wantKeys, key)
				}
			}
		}
		e.pipeline(t, calls, 16)
		for i, c := range calls {
			if c.err != nil {
				t.Fatalf("kv.get %s revision %d: %v", wantKeys[i], wantRevs[i].rev, c.err)
			}
			checkEntry(t, c.msgs[0], wantKeys[i], wantRevs[i])
		}
		hot := want.history["hot"]
		_, err := e.request(t, client.KVGetSubject("nts", "B", "g1.k00001"), client.KVGetRequest{Revision: hot[0].rev})
		wantCode(t, err, "404", "not a revision of key")
		_, err = e.request(t, client.KVGetSubject("nts", "B", "g1.k00001"), client.KVGetRequest{Revision: last + 100})
		wantCode(t, err, "404", "not archived")
	})

	t.Run("purged revisions", func(t *testing.T) {
		// Key i%97 == 2 was put in round 0 (and maybe later rounds), then
		// purged: its earlier revisions are archived, behind the purge.
		checked := 0
		for i := 2; i < nkeys; i += 97 {
			if i%50 == 1 { // deleted, not purged
				continue
			}
			key := kvKey(i)
			revs := want.history[key]
			if revs[0].op != client.KVPurge {
				t.Fatalf("%s: %+v", key, revs)
			}
			msgs, _, err := e.batchOf(t, "nts.range.KV_B", fmt.Sprintf(`{"subject": "$KV.B.%s", "end_seq": %d}`, key, revs[0].rev-1))
			if err != nil || len(msgs) == 0 {
				t.Fatalf("%s: %d archived revisions before its purge: %v", key, len(msgs), err)
			}
			for _, m := range msgs {
				rev, _ := strconv.ParseUint(m.Header.Get(client.HeaderSequence), 10, 64)
				_, err := e.request(t, client.KVGetSubject("nts", "B", key), client.KVGetRequest{Revision: rev})
				wantCode(t, err, "404", fmt.Sprintf("purged at revision %d", revs[0].rev))
				checked++
			}
		}
		if checked < nkeys/100 {
			t.Fatalf("%d purged revisions checked", checked)
		}
	})

	t.Run("keys", func(t *testing.T) {
		cases := []struct {
			name    string
			filter  string
			maxKeys int
			want    []string
		}{
			{"all", "", 0, want.keys},
			{"paged", "", 999, want.keys},
			{"group", "g3.>", 0, nil},
			{"one token", "*.k00042", 1, nil},
			{"literal", "g5.k00005", 0, nil},
			{"no match", "nope.*", 0, nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantKeys := c.want
				if c.filter != "" {
					for _, k := range want.keys {
						if matchKey(c.filter, k) {
							wantKeys = append(wantKeys, k)
						}
					}
				}
				got, pages := e.listKeys(t, c.filter, c.maxKeys)
				if !slices.Equal(got, wantKeys) {
					t.Fatalf("%d keys, want %d (first %v, want %v)", len(got), len(wantKeys), got[:min(3, len(got))], wantKeys[:min(3, len(wantKeys))])
				}
				if c.maxKeys > 0 && pages < len(wantKeys)/c.maxKeys {
					t.Fatalf("%d keys in %d pages of %d", len(got), pages, c.maxKeys)
				}
			})
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			subject string
			body    any
			code    string
		}{
			{"nts.kv.B.get.*", nil, "400"},
			{"nts.kv.B.get.a$b", nil, "400"},
			{"nts.kv.B.get.ü", nil, "400"},
			{"nts.kv.B.history.a:b", nil, "400"},
			{"nts.kv.b!d.get.x", nil, "400"},
			{"nts.kv.B.get.hot", `{"revision": -1}`, "400"},
			{"nts.kv.B.get.hot", `{"rev": 1}`, "400"},
			{"nts.kv.B.keys", `{"filter": "a.>.b"}`, "400"},
			{"nts.kv.B.keys", `{"filter": "a b"}`, "400"},
			{"nts.kv.B.keys", `{"max_keys": -1}`, "400"},
			{"nts.kv.B.keys", `{"max_keys": 200000}`, "413"},
			{"nts.kv.B.history.hot", `{"max_msgs": 200000}`, "413"},
			{"nts.kv.NOPE.get.x", nil, "404"},
			{"nts.kv.NOPE.keys", nil, "404"},
			{"nts.kv.B.get.never.set", nil, "404"},
			{"nts.kv.B.history.never.set", nil, "404"},
		} {
			t.Run(c.subject, func(t *testing.T) {
				_, err := e.request(t, c.subject, c.body)
				wantCode(t, err, c.code)
			})
		}
	})
}

// listKeys pages through kv.keys of bucket B and returns the keys and the
// number of pages.
func (e *archiveEnv) listKeys(t *testing.T, filter string, maxKeys int) ([]string, int) {
	t.Helper()
	return e.listKeysOf(t, "B", filter, maxKeys)
}

// listKeysOf is listKeys of bucket.
func (e *archiveEnv) listKeysOf(t *testing.T, bucket, filter string, maxKeys int) ([]string, int) {
	t.Helper()
	var keys []string
	req := client.KVKeysRequest{Filter: filter, MaxKeys: maxKeys}
	for pages := 1; ; pages++ {
		msgs, end, err := e.batchOf(t, client.KVKeysSubject("nts", bucket), req)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			var page client.KVKeysPage
			if err := json.Unmarshal(m.Data, &page); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, page.Keys...)
			n += len(page.Keys)
		}
		if maxKeys > 0 && n > maxKeys {
			t.Fatalf("page of %d keys, max %d", n, maxKeys)
		}
		if end.Header.Get(client.HeaderMore) != "true" {
			return keys, pages
		}
		next := end.Header.Get(client.HeaderLastKey)
		if next <= req.After {
			t.Fatalf("last key %q after %q", next, req.After)
		}
		req.After = next
	}
}

// matchKey reports whether key matches filter with NATS wildcards.
func matchKey(filter, key string) bool {
	f, k := strings.Split(filter, "."), strings.Split(key, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(k) > i
		case i >= len(k) || (tok != "*" && tok != k[i]):
			return false
		}
	}
	return len(f) == len(k)
}

// TestKVNewestIncarnation archives a bucket, deletes it and creates it
// again: the KV endpoints serve the new one.
func TestKVNewestIncarnation(t *testing.T) {
	e := newArchiveEnv(t, 64<<10, 4<<10)
	ctx := context.Background()
	kv, err := e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "INC"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "only.old", "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "both", "old"); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.waitArchived(t, "KV_INC")
	if err := e.js.DeleteKeyValue(ctx, "INC"); err != nil {
		t.Fatal(err)
	}
	kv, err = e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "INC"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "both", "new"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 30*time.Second, func() error {
		m, err := e.request(t, client.KVGetSubject("nts", "INC", "both"), nil)
		if err != nil {
			return err
		}
		if string(m.Data) != "new" || m.Header.Get(client.HeaderStream) != "KV_INC~2" {
			return fmt.Errorf("both = %q from %s", m.Data, m.Header.Get(client.HeaderStream))
		}
		return nil
	})
	_, err = e.request(t, client.KVGetSubject("nts", "INC", "only.old"), nil)
	wantCode(t, err, "404", "KV_INC~2")
	m, err := e.request(t, "nts.get.KV_INC.1", nil)
	if err != nil || !bytes.Equal(m.Data, []byte("old")) {
		t.Fatalf("the first incarnation's archive: %v", err)
	}
}

// TestKVMarkers archives a key that expired by the bucket's TTL: the
// server's marker (Nats-Marker-Reason MaxAge, no KV-Operation) is a purge to
// nts as to nats.go's KV.
func TestKVMarkers(t *testing.T) {
	e := newArchiveEnv(t, 64<<10, 4<<10)
	ctx := context.Background()
	kv, err := e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TTL", TTL: 2 * time.Second, LimitMarkerTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.start(t)
	rev, err := kv.PutString(ctx, "brief", "v")
	if err != nil {
		t.Fatal(err)
	}
	// The replica follows the stream live: it archives the marker the
	// server writes when the key expires, which expires in turn.
	var marker *nats.Msg
	checkFor(t, 20*time.Second, func() error {
		msgs, _, err := e.batchOf(t, client.KVHistorySubject("nts", "TTL", "brief"), nil)
		if err != nil || len(msgs) == 0 || msgs[len(msgs)-1].Header.Get(client.HeaderKVOperation) != client.KVPurge {
			return fmt.Errorf("no marker archived yet: %d entries, %v", len(msgs), err)
		}
		if len(msgs) != 1 {
			return fmt.Errorf("history from the marker on holds %d entries", len(msgs))
		}
		marker = msgs[0]
		return nil
	})
	seq, _ := strconv.ParseUint(marker.Header.Get(client.HeaderSequence), 10, 64)
	if seq <= rev || marker.Header.Get(jetstream.MarkerReasonHeader) != "MaxAge" {
		t.Fatalf("marker at %d after the put at %d, headers %v", seq, rev, marker.Header)
	}
	_, err = e.request(t, client.KVGetSubject("nts", "TTL", "brief"), nil)
	wantCode(t, err, "404", fmt.Sprintf("purged at revision %d", seq))
	_, err = e.request(t, client.KVGetSubject("nts", "TTL", "brief"), client.KVGetRequest{Revision: rev})
	wantCode(t, err, "404", "purged")
	if keys, _ := e.listKeysOf(t, "TTL", "", 0); len(keys) != 0 {
		t.Fatalf("keys %q of a bucket whose every key expired", keys)
	}
}
