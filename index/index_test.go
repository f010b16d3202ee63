package index

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
)

func TestOpenRejectsOptions(t *testing.T) {
	s := testenv.RunNATS(t)
	nc := testenv.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
	}{
		{"same buckets", Options{Bucket: "x", LockBucket: "x"}},
		{"too many replicas", Options{Replicas: 6}},
		{"negative replicas", Options{Replicas: -1}},
		{"short lock TTL", Options{LockTTL: 10 * time.Millisecond}},
		{"short marker TTL", Options{MarkerTTL: 500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(testCtx(t, 5*time.Second), js, tt.opts); !errors.Is(err, ErrInvalid) {
				t.Errorf("Open = %v; want ErrInvalid", err)
			}
		})
	}
	t.Run("bad bucket name", func(t *testing.T) {
		if _, err := Open(testCtx(t, 5*time.Second), js, Options{Bucket: "a.b"}); err == nil {
			t.Errorf("Open with bucket a.b succeeded")
		}
	})
	t.Run("lock bucket without TTL", func(t *testing.T) {
		ctx := testCtx(t, 5*time.Second)
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "nottl_locks"}); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, js, Options{Bucket: "nottl"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open = %v; want ErrInvalid", err)
		}
	})
	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Open(ctx, js, Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Open with a cancelled context = %v; want context.Canceled", err)
		}
	})
}

func TestOpenDefaults(t *testing.T) {
	s := testenv.RunNATS(t)
	r := openReplica(t, s, Options{})
	ctx := testCtx(t, 5*time.Second)
	for bucket, ttl := range map[string]time.Duration{DefaultBucket: 0, DefaultBucket + "_locks": DefaultLockTTL} {
		kv, err := r.js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatalf("bucket %s: %v", bucket, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != ttl || st.History() != 1 {
			t.Errorf("bucket %s: TTL %v history %d; want TTL %v history 1", bucket, st.TTL(), st.History(), ttl)
		}
	}
	if r.ix.LockTTL() != DefaultLockTTL || r.ix.Atomic() || r.ix.markerTTL != DefaultMarkerTTL {
		t.Errorf("LockTTL %v, Atomic %v, marker TTL %v", r.ix.LockTTL(), r.ix.Atomic(), r.ix.markerTTL)
	}
}

func TestCloseAndLostConnection(t *testing.T) {
	s := testenv.RunNATS(t)
	a := openReplica(t, s, Options{})
	commitChain(t, a.ix, "S", 1, 1, 10)
	if err := a.ix.WaitFor(testCtx(t, 5*time.Second), "S", 10); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	if err := a.ix.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.ix.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := testCtx(t, 5*time.Second)
	if err := a.ix.WaitFor(ctx, "S", 99); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitFor after Close = %v; want ErrClosed", err)
	}
	if _, ok := a.ix.Lookup("S", 5); !ok {
		t.Fatalf("the view lost its content on Close")
	}

	// A replica whose connection closes stops following; WaitFor says so.
	b := openReplica(t, s, Options{})
	done := make(chan error, 1)
	go func() { done <- b.ix.WaitFor(ctx, "S", 99) }()
	b.nc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitFor after the connection closed = %v; want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatalf("WaitFor did not notice the closed connection")
	}
}

// Close deletes the watch's consumer, which the client library would leave
// on the bucket's stream until its inactive threshold (5 minutes) passed.
func TestCloseDeletesWatch(t *testing.T) {
	s := testenv.RunNATS(t)
	r := openReplica(t, s, Options{})
	ctx := testCtx(t, 10*time.Second)
	str, err := r.js.Stream(ctx, "KV_"+DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if names := testenv.ConsumerNames(t, ctx, str); len(names) != 1 {
		t.Fatalf("consumers on the bucket's stream while open: %q; want the watch's alone", names)
	}
	if err := r.ix.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if names := testenv.ConsumerNames(t, ctx, str); len(names) != 0 {
		t.Fatalf("consumers on the bucket's stream after Close: %q; want none", names)
	}
}
