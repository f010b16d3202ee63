package client_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/service"
)

// BenchmarkObjectGet reads a 20 MiB object through the client from the
// archive (JetStream no longer holds its chunks) and the same object
// through JetStream's own object store Get (a second bucket that still
// holds it), in turn in each iteration. It reports the throughput of each
// and their ratio; SetBytes counts both reads.
func BenchmarkObjectGet(b *testing.B) {
	const size = 20 << 20
	e := newEnv(b)
	ctx := context.Background()
	stores := map[string]jetstream.ObjectStore{}
	for _, name := range []string{"live", "cold"} {
		obs, err := e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: name})
		if err != nil {
			b.Fatal(err)
		}
		stores[name] = obs
	}
	e.run(b, func(c *service.Config) {
		c.Block.TargetSize = 8 << 20
		c.Block.FrameSize = 128 << 10
	})
	data := randomBytes(size, 3)
	var info *jetstream.ObjectInfo
	for _, obs := range stores {
		var err error
		if info, err = obs.PutBytes(ctx, "obj", data); err != nil {
			b.Fatal(err)
		}
	}
	s, err := e.js.Stream(ctx, "OBJ_cold")
	if err != nil {
		b.Fatal(err)
	}
	e.waitArchived(b, "OBJ_cold", s.CachedInfo().State.LastSeq)
	if err := s.Purge(ctx, jetstream.WithPurgeSubject("$O.cold.C."+info.NUID)); err != nil {
		b.Fatal(err)
	}
	cold, err := e.c.ObjectStore(ctx, "cold")
	if err != nil {
		b.Fatal(err)
	}
	read := func(get func() (jetstream.ObjectResult, error)) time.Duration {
		start := time.Now()
		r, err := get()
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		return time.Since(start)
	}
	if got, err := cold.GetBytes(ctx, "obj"); err != nil || !bytes.Equal(got, data) {
		b.Fatalf("from the archive: %d bytes, %v", len(got), err)
	}

	b.SetBytes(2 * size)
	b.ReportAllocs()
	var (
		jsTime, ntsTime time.Duration
		n               int
	)
	for b.Loop() {
		jsTime += read(func() (jetstream.ObjectResult, error) { return stores["live"].Get(ctx, "obj") })
		ntsTime += read(func() (jetstream.ObjectResult, error) { return cold.Get(ctx, "obj") })
		n++
	}
	mb := float64(size) * float64(n) / 1e6
	b.ReportMetric(mb/jsTime.Seconds(), "jetstream-MB/s")
	b.ReportMetric(mb/ntsTime.Seconds(), "nts-MB/s")
	b.ReportMetric(jsTime.Seconds()/ntsTime.Seconds(), "nts/jetstream")
}
