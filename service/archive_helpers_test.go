package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// streamServer starts NATS with opts applied to its options and creates the
// stream scfg describes (on subjects "<name>.>" when it names none).
func streamServer(t *testing.T, scfg jetstream.StreamConfig, opts ...func(*server.Options)) (*nats.Conn, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc := testenv.Connect(t, testenv.RunNATS(t, opts...))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if len(scfg.Subjects) == 0 {
		scfg.Subjects = []string{scfg.Name + ".>"}
	}
	s, err := js.CreateStream(t.Context(), scfg)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, s
}

// publishRange publishes "message <i>" to subject for i from from to to-1.
func publishRange(t *testing.T, js jetstream.JetStream, subject string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := js.Publish(t.Context(), subject, fmt.Appendf(nil, "message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// archiveConfig is the configuration of a replica archiving stream from the
// server at url: the defaults (prefix "nts"), blocks sealed after 200ms,
// changed by opts; completed and valid.
func archiveConfig(t *testing.T, url, stream string, opts ...func(*service.Config)) service.Config {
	t.Helper()
	cfg := service.Config{DataDir: t.TempDir(), Streams: []service.StreamSpec{{Name: stream}}}
	cfg.NATS.URL = url
	cfg.Block.MaxLinger = service.Duration(200 * time.Millisecond)
	for _, o := range opts {
		o(&cfg)
	}
	cfg.Complete()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// openIndex opens the index cfg's replicas keep, for the test's own
// lookups, until the test ends.
func openIndex(t *testing.T, js jetstream.JetStream, cfg service.Config) *index.Index {
	t.Helper()
	ix, err := index.Open(t.Context(), js, index.Options{Bucket: cfg.Index.Bucket, MaxBytes: int64(cfg.Index.MaxBytes)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

// waitArchived waits up to 30s for ix to hold stream's first n messages.
func waitArchived(t *testing.T, ix *index.Index, stream string, n uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := ix.WaitFor(ctx, stream, n); err != nil {
		t.Fatalf("%s not archived to %d: %v", stream, n, err)
	}
}

// archiveAll runs a replica of archiveConfig(opts) archiving stream until
// the test ends, and waits for its first n messages to be archived and for
// the replica to answer for them.
func archiveAll(t *testing.T, nc *nats.Conn, js jetstream.JetStream, stream string, n uint64, opts ...func(*service.Config)) {
	t.Helper()
	cfg := archiveConfig(t, nc.ConnectedUrl(), stream, opts...)
	runReplica(t, cfg, nil)
	waitArchived(t, openIndex(t, js, cfg), stream, n)
	checkFor(t, 10*time.Second, func() error {
		var st service.StreamInfo
		m, err := nc.Request("nts.stream."+stream, nil, 10*time.Second)
		if err == nil {
			err = json.Unmarshal(m.Data, &st)
		}
		if err == nil && st.LastSeq != n {
			err = fmt.Errorf("the replica's view ends at %d", st.LastSeq)
		}
		return err
	})
}
