package testenv_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nats-tiered/nts/internal/testenv"
)

// s3RoundTrip puts and gets one object through a client of srv.
func s3RoundTrip(t *testing.T, srv testenv.S3Server) {
	t.Helper()
	testenv.CreateBucket(t, srv, "bkt")
	c := testenv.S3Client(t, srv)
	ctx := t.Context()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("a/b"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("a/b")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	if b, err := io.ReadAll(out.Body); err != nil || string(b) != "hello" {
		t.Fatalf("GetObject = %q, %v", b, err)
	}
}

// wantS3Closed fails the test if something still listens at endpoint.
func wantS3Closed(t *testing.T, endpoint string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", u.Host); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after its test ended", endpoint)
	}
}

func TestRunS3Mem(t *testing.T) {
	var srv testenv.S3Server
	t.Run("serve", func(t *testing.T) {
		srv = testenv.S3Server{Endpoint: testenv.RunS3Mem(t)}
		if !strings.HasPrefix(srv.Endpoint, "http://127.0.0.1:") {
			t.Fatalf("endpoint %q is not on 127.0.0.1", srv.Endpoint)
		}
		s3RoundTrip(t, srv)
	})
	wantS3Closed(t, srv.Endpoint)
}

func TestRunVersity(t *testing.T) {
	var srv testenv.S3Server
	t.Run("serve", func(t *testing.T) {
		srv = testenv.RunVersity(t)
		if !strings.HasPrefix(srv.Endpoint, "http://127.0.0.1:") || srv.AccessKey == "" || srv.SecretKey == "" {
			t.Fatalf("server %+v", srv)
		}
		s3RoundTrip(t, srv)
		// A second server runs beside the first.
		if other := testenv.RunVersity(t); other.Endpoint == srv.Endpoint {
			t.Fatalf("two servers on %s", srv.Endpoint)
		}
	})
	wantS3Closed(t, srv.Endpoint)
}

// TestVersityServerStopStart stops versitygw and starts it again: while
// stopped nothing answers on its endpoint; once started, on the same
// endpoint, it serves what it held before.
func TestVersityServerStopStart(t *testing.T) {
	v := testenv.RunVersityServer(t)
	s3RoundTrip(t, v.S3Server)
	if _, err := os.Stat(filepath.Join(v.Dir, "bkt", "a", "b")); err != nil {
		t.Fatalf("the object is not a file under Dir: %v", err)
	}
	c := testenv.S3Client(t, v.S3Server)
	get := func() (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("a/b")},
			func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return string(b), err
	}
	for i := range 2 {
		v.Stop()
		v.Stop() // idempotent
		if got, err := get(); err == nil {
			t.Fatalf("stop %d: GetObject = %q while stopped", i, got)
		}
		v.Start()
		v.Start() // a running server is left alone
		if got, err := get(); err != nil || got != "hello" {
			t.Fatalf("start %d: GetObject = %q, %v", i, got, err)
		}
	}
}

func TestS3ServerURL(t *testing.T) {
	got := testenv.S3Server{Endpoint: "http://127.0.0.1:9000"}.URL("bkt", "a/b")
	want := "s3://bkt/a/b?endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=true&region=us-east-1"
	if got != want {
		t.Fatalf("URL = %q, want %q", got, want)
	}
}

func TestTool(t *testing.T) {
	path := testenv.Tool(t, "versitygw")
	if again := testenv.Tool(t, "versitygw"); again != path {
		t.Fatalf("second call gave %q, first %q", again, path)
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Version") {
		t.Fatalf("%s --version: %v\n%s", path, err, out)
	}
}
