package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/service"
)

// TestLargeObjectFromS3 archives a 64 MiB object into the S3 tier alone,
// purges it from JetStream, and reads it back with plain NATS requests, one
// obj.get batch at a time: byte for byte, with the digest of its info.
func TestLargeObjectFromS3(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	off := false
	cfg.Tiers.Memory.Enabled, cfg.Tiers.File.Enabled = &off, &off
	cfg.Block.TargetSize = 4 << 20
	cfg.Block.FrameSize = 128 << 10
	cfg.Block.MaxLinger = service.Duration(200 * time.Millisecond)
	startReplica(t, cfg)
	r := e.reader(t, cfg)

	ctx := context.Background()
	obs, err := e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "big"})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{64}).Read(data)
	const name = "videos/a large file.bin"
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	info, err := obs.PutBytes(pctx, name, data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if info.Digest != "SHA-256="+base64.URLEncoding.EncodeToString(sum[:]) || info.Chunks != 512 {
		t.Fatalf("info %+v", info)
	}
	str, err := e.js.Stream(ctx, "OBJ_big")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := str.GetLastMsgForSubject(ctx, "$O.big.M."+base64.URLEncoding.EncodeToString([]byte(name)))
	if err != nil {
		t.Fatal(err)
	}
	r.waitArchived(t, "OBJ_big", meta.Sequence, time.Minute)
	if err := str.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	// The replica's own view follows the index: ask until it answers.
	var reply *nats.Msg
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, _ := json.Marshal(client.ObjRequest{Name: name})
		reply, err = e.nc.Request(client.ObjInfoSubject("nts", "big"), body, 10*time.Second)
		if err == nil && reply.Header.Get(micro.ErrorCodeHeader) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("obj.info: %v %v", err, reply.Header)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !bytes.Equal(reply.Data, meta.Data) || reply.Header.Get(client.HeaderTier) != "blob" {
		t.Fatalf("obj.info from %s: %s, want %s", reply.Header.Get(client.HeaderTier), reply.Data, meta.Data)
	}

	var got []byte
	next, batches := 0, 0
	for more := true; more; batches++ {
		msgs, end := objBatch(t, e.nc, client.ObjRequest{Name: name, NUID: info.NUID, StartChunk: next})
		for _, m := range msgs {
			got = append(got, m.Data...)
		}
		n, _ := strconv.Atoi(end.Header.Get(client.HeaderNextChunk))
		if n != next+len(msgs) || len(msgs) == 0 || end.Header.Get(client.HeaderObjDigest) != info.Digest ||
			end.Header.Get(client.HeaderObjNUID) != info.NUID {
			t.Fatalf("batch %d from chunk %d: %d chunks, end %v", batches, next, len(msgs), end.Header)
		}
		next, more = n, end.Header.Get(client.HeaderMore) == "true"
	}
	if !bytes.Equal(got, data) || next != 512 || batches < 8 {
		t.Fatalf("read %d bytes in %d batches, %d chunks; want the %d put", len(got), batches, next, len(data))
	}
	if s := sha256.Sum256(got); s != sum {
		t.Fatal("digest of the bytes read differs")
	}
}

// objBatch sends one obj.get request and returns its chunk messages and
// end-of-batch message.
func objBatch(t *testing.T, nc *nats.Conn, req client.ObjRequest) ([]*nats.Msg, *nats.Msg) {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req)
	if err := nc.PublishRequest(client.ObjGetSubject("nts", "big"), inbox, body); err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for {
		m, err := sub.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("after %d chunks: %v", len(msgs), err)
		}
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("obj.get: %s %s", code, m.Header.Get(micro.ErrorHeader))
		}
		if client.IsEndOfBatch(m) {
			return msgs, m
		}
		if m.Header.Get(client.HeaderTier) != "blob" {
			t.Fatalf("chunk served by %q", m.Header.Get(client.HeaderTier))
		}
		msgs = append(msgs, m)
	}
}
