package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/service"
)

// The examples run against an embedded NATS server (startDemo) and an nts
// replica beside it (startNTS), as `nts serve --nats-url` runs beside a
// NATS server.

func ExampleClient_GetMsg() {
	d := startDemo()
	defer d.stop()
	nc, ctx := d.nc, context.Background()
	js, _ := jetstream.New(nc)
	s, _ := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	d.startNTS()
	for i := 1; i <= 5; i++ {
		js.Publish(ctx, "orders.new", fmt.Appendf(nil, "order %d", i))
	}
	waitArchived(nc, "ORDERS", 5)
	// JetStream keeps the newest 3 from now on.
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs = 3
	js.UpdateStream(ctx, cfg)

	if _, err := s.GetMsg(ctx, 1); errors.Is(err, jetstream.ErrMsgNotFound) {
		fmt.Println("JetStream: seq 1 not found")
	}
	c := client.New(nc)
	for _, seq := range []uint64{1, 5} {
		m, err := c.GetMsg(ctx, "ORDERS", seq)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("client: seq %d %q on %s from %s\n", m.Sequence, m.Data, m.Subject, source(m))
	}
	_, err := c.GetMsg(ctx, "ORDERS", 6)
	fmt.Println("seq 6 not found:", errors.Is(err, jetstream.ErrMsgNotFound))
	// Output:
	// JetStream: seq 1 not found
	// client: seq 1 "order 1" on orders.new from the archive
	// client: seq 5 "order 5" on orders.new from JetStream
	// seq 6 not found: true
}

func ExampleClient_Range() {
	d := startDemo()
	defer d.stop()
	nc, ctx := d.nc, context.Background()
	js, _ := jetstream.New(nc)
	s, _ := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
	d.startNTS()
	for i := 1; i <= 6; i++ {
		js.Publish(ctx, fmt.Sprintf("events.%d", i%2), fmt.Appendf(nil, "event %d", i))
	}
	waitArchived(nc, "EVENTS", 6)
	s.Purge(ctx, jetstream.WithPurgeKeep(2)) // JetStream keeps seqs 5 and 6

	c := client.New(nc)
	for m, err := range c.Range(ctx, "EVENTS", client.RangeOptions{StartSeq: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("seq %d %q from %s\n", m.Sequence, m.Data, source(m))
	}
	// Output:
	// seq 2 "event 2" from the archive
	// seq 3 "event 3" from the archive
	// seq 4 "event 4" from the archive
	// seq 5 "event 5" from JetStream
	// seq 6 "event 6" from JetStream
}

func ExampleKeyValue_History() {
	d := startDemo()
	defer d.stop()
	nc, ctx := d.nc, context.Background()
	js, _ := jetstream.New(nc)
	bucket, _ := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "settings"}) // history 1
	d.startNTS()
	// nts keeps what it archived before JetStream replaced it.
	put := func(key, value string) {
		rev, _ := bucket.PutString(ctx, key, value)
		waitArchived(nc, "KV_settings", rev)
	}
	put("color", "red")
	put("color", "green")
	put("size", "large")
	bucket.Delete(ctx, "size")
	put("color", "blue")

	jsHistory, _ := bucket.History(ctx, "color")
	fmt.Println("JetStream keeps", len(jsHistory), "revision of color")

	c := client.New(nc)
	kv, err := c.KeyValue(ctx, "settings")
	if err != nil {
		log.Fatal(err)
	}
	history, err := kv.History(ctx, "color")
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range history {
		fmt.Printf("color rev %d: %s\n", e.Revision(), e.Value())
	}
	old, err := kv.GetRevision(ctx, "color", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("revision 1 of color: %s\n", old.Value())
	keys, _ := kv.Keys(ctx)
	fmt.Println("keys:", keys)
	// Output:
	// JetStream keeps 1 revision of color
	// color rev 1: red
	// color rev 2: green
	// color rev 5: blue
	// revision 1 of color: red
	// keys: [color]
}

func ExampleObjectStore_Get() {
	d := startDemo()
	defer d.stop()
	nc, ctx := d.nc, context.Background()
	js, _ := jetstream.New(nc)
	store, _ := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "reports"})
	d.startNTS()
	store.PutString(ctx, "q3.txt", "revenue up, costs down")
	si, _ := js.Stream(ctx, "OBJ_reports")
	waitArchived(nc, "OBJ_reports", si.CachedInfo().State.LastSeq)
	js.DeleteObjectStore(ctx, "reports") // JetStream forgets the whole bucket

	c := client.New(nc)
	obs, err := c.ObjectStore(ctx, "reports")
	if err != nil {
		log.Fatal(err)
	}
	r, err := obs.Get(ctx, "q3.txt")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r) // an error at the end when the bytes do not match the digest
	if err != nil {
		log.Fatal(err)
	}
	got, _ := r.Info()
	fmt.Printf("%s (%d bytes, digest verified at the end): %s\n", got.Name, got.Size, data)
	// Output:
	// q3.txt (22 bytes, digest verified at the end): revenue up, costs down
}

// source names where a message came from.
func source(m *jetstream.RawStreamMsg) string {
	if m.Header.Get(client.HeaderTier) != "" {
		return "the archive"
	}
	return "JetStream"
}

// demo is an embedded NATS server with JetStream and, once startNTS is
// called, an nts replica beside it.
type demo struct {
	nc     *nats.Conn
	srv    *server.Server
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// startDemo starts an embedded NATS server with JetStream and connects to
// it.
func startDemo() *demo {
	dir, err := os.MkdirTemp("", "nts-example-")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	return &demo{nc: nc, srv: srv, dir: dir}
}

// startNTS starts an nts replica archiving every stream, as `nts serve
// --nats-url` would, and waits until it answers.
func (d *demo) startNTS() {
	cfg := service.Config{DataDir: d.dir}
	cfg.NATS.URL = d.srv.ClientURL()
	cfg.Block.MaxLinger = service.Duration(20 * time.Millisecond)
	cfg.Complete()
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan error, 1)
	go func() { d.done <- service.Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := d.nc.Request("nts.streams", nil, time.Second); err == nil {
			return
		}
	}
	log.Fatal("nts not ready")
}

// stop stops everything startDemo and startNTS started.
func (d *demo) stop() {
	d.nc.Close()
	if d.cancel != nil {
		d.cancel()
		if err := <-d.done; err != nil {
			log.Print(err)
		}
	}
	d.srv.Shutdown()
	d.srv.WaitForShutdown()
	os.RemoveAll(d.dir)
}

// waitArchived waits until nts has archived stream up to seq.
func waitArchived(nc *nats.Conn, stream string, seq uint64) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var info service.StreamInfo
		if m, err := nc.Request("nts.stream."+stream, nil, time.Second); err == nil && json.Unmarshal(m.Data, &info) == nil && info.LastSeq >= seq {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatalf("%s not archived up to %d", stream, seq)
}
