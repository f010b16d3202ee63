package blob_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/blob"
	"github.com/nats-tiered/nts/tier/tiertest"
)

// bucketSeq numbers the buckets tests create, so every store is fresh.
var bucketSeq atomic.Int64

// runS3Mem starts the in-process S3 server with credentials for it.
func runS3Mem(t testing.TB) testenv.S3Server {
	t.Helper()
	return testenv.S3Server{
		Endpoint:  testenv.RunS3Mem(t),
		AccessKey: "nts-test-access",
		SecretKey: "nts-test-secret",
		Region:    "us-east-1",
	}
}

// newBucket creates a bucket of its own on srv and returns its name.
func newBucket(t testing.TB, srv testenv.S3Server) string {
	t.Helper()
	name := fmt.Sprintf("nts-test-%d", bucketSeq.Add(1))
	testenv.CreateBucket(t, srv, name)
	return name
}

// s3Options returns the options that reach srv with its credentials.
func s3Options(srv testenv.S3Server) blob.Options {
	return blob.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
}

// openS3 opens a store on prefix of a new bucket of srv.
func openS3(t testing.TB, srv testenv.S3Server, prefix string, opts blob.Options) (*blob.Blob, string) {
	t.Helper()
	bucket := newBucket(t, srv)
	b, err := blob.Open(t.Context(), srv.URL(bucket, prefix), opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, bucket
}

func TestConformanceDir(t *testing.T) {
	tiertest.Run(t, func(t *testing.T) tier.Tier {
		b, err := blob.Open(t.Context(), "dir://"+filepath.ToSlash(t.TempDir()), blob.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestConformanceS3Mem(t *testing.T) {
	srv := runS3Mem(t)
	tiertest.Run(t, func(t *testing.T) tier.Tier {
		b, _ := openS3(t, srv, "", s3Options(srv))
		return b
	})
}

// TestConformanceVersity also covers stores under a prefix.
func TestConformanceVersity(t *testing.T) {
	srv := testenv.RunVersity(t)
	tiertest.Run(t, func(t *testing.T) tier.Tier {
		b, _ := openS3(t, srv, "nts", s3Options(srv))
		return b
	})
}
