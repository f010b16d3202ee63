package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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
	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/blob"
)

// apiEnv is one NATS server with a stream "ORDERS" of published messages.
type apiEnv struct {
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	sent map[uint64]*nats.Msg // by stream seq
	last uint64
}

const maxPayload = 64 << 10

// newAPIEnv starts NATS (max payload 64KiB) and publishes ORDERS: seq 1 a
// payload of every byte value with a repeated header key, seq 2 an empty
// payload, seq 3 a payload that fits the max payload but not with a reply's
// headers, then 400 messages of 1KiB on orders.<i%3>; seq 10 is deleted
// before anything archives it.
func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	srv := testenv.RunNATS(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{srv: srv, nc: nc, js: js, sent: map[uint64]*nats.Msg{}}
	pub := func(m *nats.Msg) {
		t.Helper()
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		e.sent[ack.Sequence] = m
		e.last = ack.Sequence
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	m := nats.NewMsg("orders.bin")
	m.Data = all
	m.Header.Add("Trace", "one")
	m.Header.Add("Trace", "two")
	m.Header.Set("X-Other", "x")
	pub(m)
	pub(nats.NewMsg("orders.empty"))
	big := nats.NewMsg("orders.big")
	big.Data = bytes.Repeat([]byte{7}, maxPayload-40)
	pub(big)
	for i := range 400 {
		m := nats.NewMsg(fmt.Sprintf("orders.%d", i%3))
		m.Data = bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 512)
		pub(m)
	}
	s, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 10); err != nil {
		t.Fatal(err)
	}
	delete(e.sent, 10)
	return e
}

// config is a replica's configuration: file and dir:// blob tiers (no
// memory tier, so that a test can remove a block from every tier), small
// blocks.
func (e *apiEnv) config(t *testing.T) service.Config {
	t.Helper()
	c := service.Config{DataDir: t.TempDir()}
	c.NATS.URL = e.srv.ClientURL()
	off := false
	c.Tiers.Memory.Enabled = &off
	c.Block.TargetSize = 64 << 10
	c.Block.FrameSize = 8 << 10
	c.Block.MaxLinger = service.Duration(100 * time.Millisecond)
	c.Service.RequestTimeout = service.Duration(10 * time.Second)
	c.Complete()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs a replica until the test ends and waits for ORDERS to be
// archived.
func (e *apiEnv) run(t *testing.T, cfg service.Config) {
	t.Helper()
	runReplica(t, cfg, nil)
	ctx := t.Context()
	ix, err := index.Open(ctx, e.js, index.Options{Bucket: cfg.Index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := ix.WaitFor(wctx, "ORDERS", e.last); err != nil {
		t.Fatalf("ORDERS not archived: %v", err)
	}
	// The endpoints answer once the replica's own view holds the blocks.
	checkFor(t, 10*time.Second, func() error {
		var st service.StreamInfo
		if err := e.requestJSON("nts.stream.ORDERS", nil, &st); err != nil {
			return err
		}
		if st.LastSeq != e.last {
			return fmt.Errorf("replica's view ends at %d", st.LastSeq)
		}
		return nil
	})
}

func checkFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// request sends a request as any NATS client would.
func (e *apiEnv) request(subject string, body []byte) (*nats.Msg, error) {
	return e.nc.Request(subject, body, 10*time.Second)
}

// requestJSON decodes a JSON reply into v, or returns the micro error.
func (e *apiEnv) requestJSON(subject string, body []byte, v any) error {
	m, err := e.request(subject, body)
	if err != nil {
		return err
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Errorf("%s: %s", code, m.Header.Get(micro.ErrorHeader))
	}
	return json.Unmarshal(m.Data, v)
}

// checkMsg checks that reply carries published message seq byte for byte.
func (e *apiEnv) checkMsg(t testing.TB, reply *nats.Msg, seq uint64) {
	t.Helper()
	want := e.sent[seq]
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("seq %d: error %s %s", seq, code, reply.Header.Get(micro.ErrorHeader))
	}
	if !bytes.Equal(reply.Data, want.Data) {
		t.Fatalf("seq %d: payload %d bytes, want %d", seq, len(reply.Data), len(want.Data))
	}
	h := reply.Header
	if h.Get("Nats-Stream") != "ORDERS" || h.Get("Nats-Sequence") != strconv.FormatUint(seq, 10) || h.Get("Nats-Subject") != want.Subject {
		t.Fatalf("seq %d: headers %v", seq, h)
	}
	ts, err := time.Parse(time.RFC3339Nano, h.Get("Nats-Time-Stamp"))
	if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Hour {
		t.Fatalf("seq %d: Nats-Time-Stamp %q: %v", seq, h.Get("Nats-Time-Stamp"), err)
	}
	if tr := h.Get(client.HeaderTier); tr != "file" && tr != "blob" {
		t.Fatalf("seq %d: Nts-Tier %q", seq, tr)
	}
	for k, vs := range want.Header {
		if fmt.Sprint(h.Values(k)) != fmt.Sprint(vs) {
			t.Fatalf("seq %d: header %s = %q, published %q", seq, k, h.Values(k), vs)
		}
	}
}

// wantError checks that reply is a micro error with code.
func wantError(t testing.TB, reply *nats.Msg, err error, code string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if got := reply.Header.Get(micro.ErrorCodeHeader); got != code {
		t.Fatalf("code %q (%s), want %s", got, reply.Header.Get(micro.ErrorHeader), code)
	}
	if reply.Header.Get(micro.ErrorHeader) == "" {
		t.Fatal("no error description")
	}
}

// batch is what one msg.range request received.
type batch struct {
	msgs    []*nats.Msg
	lastSeq uint64
	pending uint64
}

// rangeBatch sends a msg.range request and reads its batch up to the end
// marker, or returns the micro error that ended it.
func (e *apiEnv) rangeBatch(t testing.TB, body string) (batch, error) {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := e.nc.PublishRequest("nts.range.ORDERS", inbox, []byte(body)); err != nil {
		t.Fatal(err)
	}
	var b batch
	for {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(b.msgs), err)
		}
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			return b, fmt.Errorf("%s: %s", code, m.Header.Get(micro.ErrorHeader))
		}
		if m.Header.Get(client.HeaderStatus) == "204" {
			if len(m.Data) != 0 {
				t.Fatal("end of batch with a payload")
			}
			b.lastSeq, _ = strconv.ParseUint(m.Header.Get(client.HeaderLastSeq), 10, 64)
			b.pending, _ = strconv.ParseUint(m.Header.Get(client.HeaderNumPending), 10, 64)
			return b, nil
		}
		if int64(len(m.Data)) > e.nc.MaxPayload() {
			t.Fatalf("message of %d bytes over max payload", len(m.Data))
		}
		b.msgs = append(b.msgs, m)
	}
}

func TestAPI(t *testing.T) {
	e := newAPIEnv(t)
	cfg := e.config(t)
	e.run(t, cfg)

	t.Run("get", func(t *testing.T) {
		for _, seq := range []uint64{1, 2, 4, 200, e.last} {
			m, err := e.request(fmt.Sprintf("nts.get.ORDERS.%d", seq), nil)
			if err != nil {
				t.Fatal(err)
			}
			e.checkMsg(t, m, seq)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			subject, body, code string
		}{
			{"nts.get.ORDERS.0", "", "400"},
			{"nts.get.ORDERS.x", "", "400"},
			{"nts.get.ORDERS.-1", "", "400"},
			{"nts.get.ORDERS.99999999999999999999", "", "400"},
			{"nts.get.ORDERS.1.2", "", "400"},
			{"nts.get.ORDERS", "", "400"},
			{"nts.stream.ORDERS.x", "", "400"},
			{"nts.range.ORDERS", "{", "400"},
			{"nts.range.ORDERS", `{"unknown": 1}`, "400"},
			{"nts.range.ORDERS", `{"start_seq": 18446744073709551616}`, "400"},
			{"nts.range.ORDERS", `{"subject": "a.>.b"}`, "400"},
			{"nts.range.ORDERS", `{"max_msgs": 1000000}`, "413"},
			{"nts.blocks.ORDERS", `{"limit": 5000}`, "413"},
			{"nts.last.ORDERS", `{"subject": ""} x`, "400"},
			{"nts.get.NOPE.1", "", "404"},
			{"nts.get.ORDERS.99999", "", "404"},
			{"nts.get.ORDERS.10", "", "404"}, // deleted before archiving: a gap inside a block
			{"nts.last.ORDERS", `{"subject": "nowhere"}`, "404"},
			{"nts.range.NOPE", "", "404"},
			{"nts.stream.NOPE", "", "404"},
			{"nts.blocks.NOPE", "", "404"},
			{"nts.block.ORDERS.2", "", "404"},
			{"nts.get.ORDERS.3", "", "413"}, // fits the max payload, not with the reply's headers
		} {
			t.Run(tc.subject+" "+tc.body, func(t *testing.T) {
				m, err := e.request(tc.subject, []byte(tc.body))
				wantError(t, m, err, tc.code)
			})
		}
	})

	t.Run("last", func(t *testing.T) {
		var newest uint64
		for seq, m := range e.sent {
			if m.Subject == "orders.1" && seq > newest {
				newest = seq
			}
		}
		m, err := e.request("nts.last.ORDERS", []byte(`{"subject": "orders.1"}`))
		if err != nil {
			t.Fatal(err)
		}
		e.checkMsg(t, m, newest)
		m, err = e.request("nts.last.ORDERS", []byte(`{"subject": "orders.bin"}`))
		if err != nil {
			t.Fatal(err)
		}
		e.checkMsg(t, m, 1)
	})

	t.Run("range paged", func(t *testing.T) {
		var got []uint64
		start, batches := uint64(1), 0
		for {
			b, err := e.rangeBatch(t, fmt.Sprintf(`{"start_seq": %d, "max_msgs": 50}`, start))
			if err != nil {
				// seq 3 does not fit a reply: the batch before it ends early,
				// and a batch starting at it is refused.
				if start != 3 {
					t.Fatalf("batch from %d: %v", start, err)
				}
				start = 4
				continue
			}
			batches++
			if len(b.msgs) > 50 {
				t.Fatalf("batch of %d messages", len(b.msgs))
			}
			for _, m := range b.msgs {
				seq, _ := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
				e.checkMsg(t, m, seq)
				got = append(got, seq)
			}
			if b.pending == 0 {
				break
			}
			start = b.lastSeq + 1
		}
		if len(got) != len(e.sent)-1 || batches < 8 {
			t.Fatalf("%d messages in %d batches, want %d in 8 or more", len(got), batches, len(e.sent)-1)
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("seq %d after %d", got[i], got[i-1])
			}
		}
	})

	t.Run("range filtered and bounded", func(t *testing.T) {
		b, err := e.rangeBatch(t, `{"start_seq": 4, "end_seq": 100, "subject": "orders.2", "max_bytes": 20000}`)
		if err != nil {
			t.Fatal(err)
		}
		// 1KiB payloads and ~150 bytes of headers: 17 fit 20000 bytes.
		if len(b.msgs) != 17 || b.pending == 0 {
			t.Fatalf("%d messages, pending %d", len(b.msgs), b.pending)
		}
		for _, m := range b.msgs {
			if m.Subject == "" || m.Header.Get("Nats-Subject") != "orders.2" {
				t.Fatalf("subject %q", m.Header.Get("Nats-Subject"))
			}
		}
		b, err = e.rangeBatch(t, `{"start_seq": 4, "end_seq": 100, "subject": "orders.2"}`)
		if err != nil || b.pending != 0 || b.lastSeq != 100 || len(b.msgs) != 32 {
			t.Fatalf("%d messages, last %d, pending %d, %v", len(b.msgs), b.lastSeq, b.pending, err)
		}
		b, err = e.rangeBatch(t, `{"start_time": "2000-01-01T00:00:00Z", "max_msgs": 2}`)
		if err != nil || len(b.msgs) != 2 || b.lastSeq != 2 {
			t.Fatalf("%d messages, last %d, %v", len(b.msgs), b.lastSeq, err)
		}
	})

	t.Run("info", func(t *testing.T) {
		var streams service.StreamsReply
		if err := e.requestJSON("nts.streams", nil, &streams); err != nil {
			t.Fatal(err)
		}
		if len(streams.Streams) != 1 || streams.Streams[0].Stream != "ORDERS" || streams.Streams[0].Msgs != uint64(len(e.sent)) {
			t.Fatalf("streams %+v", streams)
		}
		var info service.StreamInfo
		if err := e.requestJSON("nts.stream.ORDERS", nil, &info); err != nil {
			t.Fatal(err)
		}
		if info.FirstSeq != 1 || info.LastSeq != e.last || info.Blocks < 5 || info.Tiers["file"].Blocks != info.Blocks ||
			info.Tiers["blob"].Bytes != info.Bytes || info.Leader == "" || info.Lag == nil || *info.Lag != 0 ||
			info.FirstTime.IsZero() || info.LastTime.Before(info.FirstTime) {
			t.Fatalf("stream info %+v", info)
		}
		var page service.BlocksReply
		if err := e.requestJSON("nts.blocks.ORDERS", []byte(`{"limit": 2}`), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Blocks) != 2 || !page.More || page.NextSeq != page.Blocks[1].LastSeq+1 || page.Blocks[0].FirstSeq != 1 {
			t.Fatalf("blocks page %+v", page)
		}
		var all service.BlocksReply
		if err := e.requestJSON("nts.blocks.ORDERS", []byte(`{"from_seq": 2}`), &all); err != nil {
			t.Fatal(err)
		}
		if len(all.Blocks) != info.Blocks || all.More {
			t.Fatalf("%d blocks, more %v; stream info says %d", len(all.Blocks), all.More, info.Blocks)
		}
		var bm index.BlockMeta
		second := all.Blocks[1]
		if err := e.requestJSON(fmt.Sprintf("nts.block.ORDERS.%d", second.FirstSeq), nil, &bm); err != nil {
			t.Fatal(err)
		}
		if !bm.Equal(&second) || bm.Key == "" || bm.Count == 0 {
			t.Fatalf("block info %+v, want %+v", bm, second)
		}
	})

	t.Run("admin status", func(t *testing.T) {
		var st service.Status
		if err := e.requestJSON("nts.admin.status", nil, &st); err != nil {
			t.Fatal(err)
		}
		if st.Instance == "" || st.Version != service.Version() || len(st.Tiers) != 2 || st.Tiers[0].Tier != "file" ||
			st.Tiers[0].Hits == 0 || fmt.Sprint(st.Leads) != "[ORDERS]" || st.Streams["ORDERS"].Messages != int64(len(e.sent)) {
			t.Fatalf("status %+v", st)
		}
		var one service.Status
		if err := e.requestJSON("nts.admin."+st.Instance+".status", nil, &one); err != nil {
			t.Fatal(err)
		}
		if one.Instance != st.Instance {
			t.Fatalf("instance subject answered by %q", one.Instance)
		}
		// The lock instance id is the micro service's instance id.
		var info micro.Info
		if err := e.requestJSON("$SRV.INFO.nts", nil, &info); err != nil {
			t.Fatal(err)
		}
		if info.ID != st.Instance || info.Metadata["prefix"] != "nts" || len(info.Endpoints) != 19 {
			t.Fatalf("micro info %+v", info)
		}
	})

	// Last: it removes a block from every tier behind the index's back.
	t.Run("unavailable", func(t *testing.T) {
		ctx := context.Background()
		var page service.BlocksReply
		if err := e.requestJSON("nts.blocks.ORDERS", []byte(`{"from_seq": 300, "limit": 1}`), &page); err != nil {
			t.Fatal(err)
		}
		blk := page.Blocks[0]
		f, err := tier.NewFile(cfg.Tiers.File.Dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := blob.Open(ctx, cfg.Tiers.Blob.URL, blob.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range []tier.Tier{f, b} {
			if err := tr.Delete(ctx, blk.Key); err != nil {
				t.Fatal(err)
			}
		}
		m, err := e.request(fmt.Sprintf("nts.get.ORDERS.%d", blk.LastSeq), nil)
		wantError(t, m, err, "503")
		if _, err := e.rangeBatch(t, fmt.Sprintf(`{"start_seq": %d}`, blk.FirstSeq)); err == nil || err.Error()[:3] != "503" {
			t.Fatalf("range over a lost block: %v", err)
		}
	})
}
