package perf_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/tier/blob"
)

// startEnv starts an Env for the test and closes it when the test ends.
func startEnv(tb testing.TB, o perf.EnvOptions) *perf.Env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := perf.StartEnv(ctx, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Error(err)
		}
	})
	return e
}

// TestStartEnv starts the environment each way it can be had and checks
// its NATS server and S3 bucket answer, that a blob written under its URL
// is read back, and that Close removes its directory and is idempotent.
func TestStartEnv(t *testing.T) {
	given := testenv.RunNATS(t)
	for _, tc := range []struct {
		name     string
		opts     perf.EnvOptions
		wantNATS string
		wantS3   string
		embedded bool
	}{
		{"embedded, versitygw found", perf.EnvOptions{}, "embedded nats-server", "versitygw (", true},
		{"given NATS, versitygw given", perf.EnvOptions{NATSURL: given.ClientURL(), Versitygw: testenv.Tool(t, "versitygw")}, "(given)", "versitygw (given", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, tc.opts)
			if !strings.Contains(e.NATS, tc.wantNATS) || !strings.Contains(e.S3, tc.wantS3) {
				t.Errorf("NATS %q, S3 %q; want %q and %q", e.NATS, e.S3, tc.wantNATS, tc.wantS3)
			}
			if (e.Embedded != nil) != tc.embedded {
				t.Errorf("embedded server %v, want %v", e.Embedded != nil, tc.embedded)
			}
			if got, want := e.Name("S"), "S_"+e.ID; (got == want) == tc.embedded {
				t.Errorf("Name(S) = %q with embedded %v", got, tc.embedded)
			}
			nc, err := nats.Connect(e.NATSURL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			ctx := context.Background()
			b, err := blob.Open(ctx, e.BlobURLUnder("t"), e.BlobOptions)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Put(ctx, "S/k", []byte("block")); err != nil {
				t.Fatal(err)
			}
			if got, err := b.Get(ctx, "S/k"); err != nil || string(got) != "block" {
				t.Fatalf("Get = %q, %v", got, err)
			}
			if cfg := b.Config(); !strings.HasSuffix(cfg.Prefix, "nts-bench-"+e.ID+"/t") {
				t.Errorf("blob prefix %q", cfg.Prefix)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := os.Stat(e.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after Close: %v", e.Dir, err)
			}
		})
	}
}

// TestStartEnvGivenS3 uses an S3 bucket it is given, under a prefix of the
// run's own that Close empties, leaving the rest of the bucket alone.
func TestStartEnvGivenS3(t *testing.T) {
	s3 := testenv.S3Server{Endpoint: testenv.RunS3Mem(t)}
	testenv.CreateBucket(t, s3, "given")
	ctx := context.Background()
	opts := blob.Options{AccessKey: "k", SecretKey: "s"}
	other, err := blob.Open(ctx, s3.URL("given", "other"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Put(ctx, "S/keep", []byte("x")); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, perf.EnvOptions{S3URL: s3.URL("given", "bench"), AccessKey: "k", SecretKey: "s"})
	if !strings.Contains(e.S3, "(given)") {
		t.Errorf("S3 %q", e.S3)
	}
	b, err := blob.Open(ctx, e.BlobURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "S/run", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if objs, err := b.List(ctx, ""); err != nil || len(objs) != 0 {
		t.Errorf("after Close the run's prefix holds %v (%v)", objs, err)
	}
	if got, err := other.Get(ctx, "S/keep"); err != nil || string(got) != "x" {
		t.Errorf("the rest of the bucket: %q, %v", got, err)
	}
}

// TestStartEnvErrors checks options that name no usable server.
func TestStartEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts perf.EnvOptions
		want string
		is   error
	}{
		{"bad S3 URL", perf.EnvOptions{S3URL: "s3://a"}, "3 to 63", blob.ErrInvalidURL},
		{"dir URL", perf.EnvOptions{S3URL: "dir:///tmp"}, "want an s3:// URL", nil},
		{"no NATS", perf.EnvOptions{NATSURL: "nats://127.0.0.1:1"}, "NATS at nats://127.0.0.1:1", nil},
		{"no versitygw", perf.EnvOptions{Versitygw: "/nonexistent/versitygw"}, "/nonexistent/versitygw", nil},
		{"missing bucket", perf.EnvOptions{S3URL: testenv.S3Server{Endpoint: testenv.RunS3Mem(t)}.URL("none", "p"), AccessKey: "k", SecretKey: "s"}, "none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			e, err := perf.StartEnv(ctx, tc.opts)
			if err == nil {
				e.Close()
				t.Fatal("StartEnv succeeded")
			}
			if !errors.Is(err, perf.ErrEnv) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v: want perf.ErrEnv with %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
		})
	}
}
