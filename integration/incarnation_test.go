package integration

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRecreatedStreamIsArchivedApart deletes a stream and creates it again
// under the same name (its sequences restart at 1): the first archive stays
// whole and readable, the new life is archived apart as "<name>~2", and a
// deleted stream stops its ingest without touching its archive.
func TestRecreatedStreamIsArchivedApart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config(t)
	startReplica(t, cfg)
	rd := e.reader(t, cfg)
	create := func() {
		t.Helper()
		if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "LIFE", Subjects: []string{"life.>"}}); err != nil {
			t.Fatal(err)
		}
	}
	create()
	first := map[uint64]published{}
	publish(t, e.js, "life", 0, 300, first, nil)
	rd.waitArchived(t, "LIFE", 300, 30*time.Second)
	if err := e.js.DeleteStream(ctx, "LIFE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // distinct creation times, whatever the clock's resolution
	create()
	second := map[uint64]published{}
	publish(t, e.js, "life", 1000, 120, second, nil)
	rd.waitArchived(t, "LIFE~2", 120, 30*time.Second)
	checkArchive(t, rd, "LIFE", first)
	checkArchive(t, rd, "LIFE~2", second)
	h1, _, err := rd.ix.Head(ctx, "LIFE")
	if err != nil {
		t.Fatal(err)
	}
	h2, _, err := rd.ix.Head(ctx, "LIFE~2")
	if err != nil {
		t.Fatal(err)
	}
	if h1.Incarnation == "" || h1.Incarnation == h2.Incarnation {
		t.Fatalf("incarnations %q and %q should differ", h1.Incarnation, h2.Incarnation)
	}
	// Deleting the stream again leaves both archives as they are.
	if err := e.js.DeleteStream(ctx, "LIFE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	checkArchive(t, rd, "LIFE", first)
	checkArchive(t, rd, "LIFE~2", second)
}
