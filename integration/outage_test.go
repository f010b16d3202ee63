package integration

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier"
)

// blobPrefix is the prefix of the blob tier in the "archive" bucket that
// env.config sets.
const blobPrefix = "nts"

// TestS3OutageMidIngest kills the S3 server while messages flow and keeps
// publishing: the ingest keeps fetching but commits and acks nothing it
// could not store, no partial object becomes visible, and once S3 is back
// every message is archived exactly once, each block stored once under the
// key the index names.
func TestS3OutageMidIngest(t *testing.T) {
	vs := testenv.RunVersityServer(t)
	e := newEnvOn(t, vs.S3Server)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Index.LockTTL = service.Duration(3 * time.Second)
	cfg.Block.TargetSize = 64 << 10
	startReplica(t, cfg)
	rd := e.reader(t, cfg)
	want := map[uint64]published{}

	// Stop S3 partway through a burst, once some blocks are committed.
	var stopped time.Time
	var stored uint64 // the last seq of the blocks S3 held when it stopped
	publish(t, e.js, "orders", 0, 3000, want, func(last uint64) {
		switch {
		case last == 1000:
			rd.waitArchived(t, "ORDERS", 1, 30*time.Second)
		case last == 2000:
			vs.Stop()
			stopped = time.Now()
			stored = storedBlocks(t, vs.Dir)
		}
	})
	h, _, err := rd.ix.Head(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("S3 stopped: it holds blocks up to seq %d, the head is at %d", stored, h.LastSeq)

	// For 4s of outage, 250 messages go out every 100ms; all the while the
	// head stays within what S3 held, and the consumer acks nothing past
	// the head.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for next := 3000; time.Since(stopped) < 4*time.Second; next += 250 {
		publish(t, e.js, "orders", next, 250, want, nil)
		checkNothingPast(t, e, rd, stored)
		<-tick.C
	}
	info := consumerInfo(t, e.js, "ORDERS", "nts-ORDERS-reader")
	if info.Delivered.Stream <= stored {
		t.Fatalf("the ingest fetched up to seq %d only; the outage should find it with blocks to write past %d", info.Delivered.Stream, stored)
	}

	vs.Start()
	restarted := time.Now()
	// Right after the restart the bucket shows whole blocks only: the
	// committed ones, and those being written again.
	objs := bucketObjects(t, vs.S3Server)
	h, _, err = rd.ix.Head(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	rd.waitArchived(t, "ORDERS", h.LastSeq, 10*time.Second)
	for key, blk := range objs {
		m := wholeBlock(t, key, blk)
		if m.LastSeq > h.LastSeq {
			continue // not committed yet
		}
		if b, ok := rd.ix.Block("ORDERS", m.FirstSeq); !ok || b.Key != key {
			t.Fatalf("object %s is not a committed block (the head is at %d; the index has %+v)", key, h.LastSeq, b)
		}
	}
	total := uint64(len(want))
	rd.waitArchived(t, "ORDERS", total, 45*time.Second)
	caughtUp := time.Since(restarted)
	checkArchive(t, rd, "ORDERS", want)
	waitAcked(t, e.js, "ORDERS", "nts-ORDERS", total, 30*time.Second)

	// Every object is a block the index lists, under the key it names: the
	// blocks that were being written when S3 stopped were written again
	// under the same keys and committed once.
	objs = bucketObjects(t, vs.S3Server)
	blocks := rd.ix.Blocks("ORDERS", 0, 0)
	for _, b := range blocks {
		blk, ok := objs[b.Key]
		if !ok {
			t.Fatalf("block %s is in the index, not in S3", b.Key)
		}
		if m := wholeBlock(t, b.Key, blk); m.Checksum != b.Checksum || uint64(m.Count) != b.Count || m.Size != b.Size {
			t.Fatalf("object %s holds %+v; the index says %+v", b.Key, m, b)
		}
		delete(objs, b.Key)
	}
	for key := range objs {
		t.Errorf("object %s is in S3 but not in the index", key)
	}
	t.Logf("%d messages in %d blocks; S3 down %v, archive caught up %v after S3 came back",
		total, len(blocks), restarted.Sub(stopped).Round(time.Millisecond), caughtUp.Round(time.Millisecond))
}

// storedBlocks reads the ORDERS blocks versitygw stored under dir while it is
// stopped, checks that each is whole, and returns the highest last seq.
func storedBlocks(t *testing.T, dir string) uint64 {
	t.Helper()
	sub := filepath.Join(dir, "archive", blobPrefix, "ORDERS")
	entries, err := os.ReadDir(sub)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var last uint64
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), ".") {
			continue // versitygw's upload in progress, never listed
		}
		blk, err := os.ReadFile(filepath.Join(sub, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, wholeBlock(t, "ORDERS/"+de.Name(), blk).LastSeq)
	}
	return last
}

// checkNothingPast checks, while S3 is down, that the head has not moved past
// stored and that the consumer acked nothing past the head.
func checkNothingPast(t *testing.T, e *env, rd *reader, stored uint64) {
	t.Helper()
	// The ack follows the commit: read the ack floor first.
	info := consumerInfo(t, e.js, "ORDERS", "nts-ORDERS")
	h, _, err := rd.ix.Head(context.Background(), "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if h.LastSeq > stored {
		t.Fatalf("the head moved to seq %d while S3, holding blocks up to %d, was down", h.LastSeq, stored)
	}
	if info.AckFloor.Stream > h.LastSeq {
		t.Fatalf("the consumer acked up to seq %d, past the head at %d", info.AckFloor.Stream, h.LastSeq)
	}
}

func consumerInfo(t *testing.T, js jetstream.JetStream, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		t.Fatalf("consumer %s of %s: %v", name, stream, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("consumer %s of %s: %v", name, stream, err)
	}
	return info
}

// waitAcked waits until the consumer exists and has acked every message
// up to seq (or been moved past it).
func waitAcked(t *testing.T, js jetstream.JetStream, stream, name string, seq uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var info *jetstream.ConsumerInfo
		c, err := js.Consumer(ctx, stream, name)
		if err == nil {
			info, err = c.Info(ctx)
		}
		cancel()
		switch {
		case err == nil && info.AckFloor.Stream >= seq && info.NumAckPending == 0:
			return
		case err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound):
			t.Fatalf("consumer %s of %s: %v", name, stream, err)
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("consumer %s of %s: %v after %v", name, stream, err, d)
			}
			t.Fatalf("consumer %s: ack floor %d with %d pending after %v; want %d, 0", name, info.AckFloor.Stream, info.NumAckPending, d, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bucketObjects reads every object of the "archive" bucket on s, by key
// relative to the blob tier's prefix. An object outside the prefix fails
// the test.
func bucketObjects(t *testing.T, s testenv.S3Server) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := testenv.S3Client(t, s)
	out := map[string][]byte{}
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("archive")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list the bucket: %v", err)
		}
		for _, o := range page.Contents {
			name := aws.ToString(o.Key)
			key, ok := strings.CutPrefix(name, blobPrefix+"/")
			if !ok {
				t.Fatalf("object %q is outside the blob tier's prefix", name)
			}
			obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("archive"), Key: aws.String(name)})
			if err != nil {
				t.Fatalf("get %s: %v", name, err)
			}
			blk, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatalf("get %s: %v", name, err)
			}
			out[key] = blk
		}
	}
	return out
}

// wholeBlock checks that blk is a whole block, every frame intact, holding
// the sequence range its key names, and returns its summary.
func wholeBlock(t *testing.T, key string, blk []byte) block.Meta {
	t.Helper()
	stream, first, last, err := tier.ParseKey(key)
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	r, err := block.OpenBytes(blk)
	if err != nil {
		t.Fatalf("object %s (%d bytes) is not a whole block: %v", key, len(blk), err)
	}
	m := r.Meta()
	if m.Stream != stream || m.FirstSeq != first || m.LastSeq != last || m.Size != int64(len(blk)) {
		t.Fatalf("object %s holds %s %d-%d in %d of %d bytes", key, m.Stream, m.FirstSeq, m.LastSeq, m.Size, len(blk))
	}
	n := 0
	err = r.Range(context.Background(), first, last, func(block.Msg) error { n++; return nil })
	if err != nil || n != m.Count {
		t.Fatalf("object %s: read %d of %d messages: %v", key, n, m.Count, err)
	}
	return m
}
