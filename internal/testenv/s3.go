package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Server describes an S3-compatible server a test talks to. For the
// server RunS3Mem starts, S3Server{Endpoint: endpoint} is enough: it accepts
// any credentials, and empty fields get test defaults.
type S3Server struct {
	Endpoint  string // "http://127.0.0.1:<port>"
	AccessKey string
	SecretKey string
	Region    string
}

// Defaults for the fields of an S3Server left empty.
const (
	s3DefaultAccessKey = "nts-test-access"
	s3DefaultSecretKey = "nts-test-secret"
	s3DefaultRegion    = "us-east-1"
)

// withDefaults fills the empty credential and region fields.
func (s S3Server) withDefaults() S3Server {
	if s.AccessKey == "" {
		s.AccessKey = s3DefaultAccessKey
	}
	if s.SecretKey == "" {
		s.SecretKey = s3DefaultSecretKey
	}
	if s.Region == "" {
		s.Region = s3DefaultRegion
	}
	return s
}

// URL returns the blob-store URL of prefix in bucket on s, with the endpoint,
// region and path-style addressing as query parameters. Credentials are not
// part of it.
func (s S3Server) URL(bucket, prefix string) string {
	s = s.withDefaults()
	q := url.Values{}
	q.Set("endpoint", s.Endpoint)
	q.Set("region", s.Region)
	q.Set("path_style", "true")
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: q.Encode()}
	return u.String()
}

// RunS3Mem starts an in-process S3 server (gofakes3 with its in-memory
// backend) on 127.0.0.1 and returns its endpoint. It is closed when the test
// ends. It has no buckets: create them with CreateBucket.
func RunS3Mem(t testing.TB) string {
	t.Helper()
	faker := gofakes3.New(s3mem.New())
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

// S3Client returns a client of s that addresses buckets by path, with
// static credentials and no optional checksums.
func S3Client(t testing.TB, s S3Server) *s3.Client {
	t.Helper()
	s = s.withDefaults()
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates bucket name on s or fails the test.
func CreateBucket(t testing.TB, s S3Server, name string) {
	t.Helper()
	s = s.withDefaults()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if s.Region != s3DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.Region),
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := S3Client(t, s).CreateBucket(ctx, in); err != nil {
		t.Fatalf("testenv: create bucket %q on %s: %v", name, s.Endpoint, err)
	}
}

// versityReadyTimeout bounds how long versitygw may take to answer.
const versityReadyTimeout = 30 * time.Second

// errVersityPort is returned by startVersity when the port was taken
// between choosing it and versitygw binding it.
var errVersityPort = errors.New("port in use")

// RunVersity starts versitygw, built from the tools module, serving the
// directory t.TempDir() with its posix backend on a random port of
// 127.0.0.1, with root credentials of its own. It returns once the server
// answers. The server is stopped and waited for when the test ends; if the
// test failed, its output goes to the test log.
func RunVersity(t testing.TB) S3Server {
	t.Helper()
	bin := Tool(t, "versitygw")
	root := t.TempDir()
	s := S3Server{
		AccessKey: "nts-versity-access",
		SecretKey: "nts-versity-secret",
		Region:    s3DefaultRegion,
	}
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		err = startVersity(t, bin, root, port, s)
		if err == nil {
			return s
		}
		if !errors.Is(err, errVersityPort) {
			t.Fatalf("testenv: versitygw: %v", err)
		}
	}
	t.Fatal("testenv: versitygw: no free port after 5 tries")
	return S3Server{}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// startVersity runs versitygw on port and waits until it answers. On success
// it has registered the cleanup that stops it; on failure the process has
// exited.
func startVersity(t testing.TB, bin, root string, port int, s S3Server) error {
	out := &syncBuffer{}
	cmd := exec.Command(bin,
		"--port", "127.0.0.1:"+strconv.Itoa(port),
		"--region", s.Region,
		"--quiet",
		"posix", root)
	// Credentials through the environment keep them out of process lists.
	cmd.Env = append(os.Environ(),
		"ROOT_ACCESS_KEY_ID="+s.AccessKey,
		"ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(versityReadyTimeout)
	for {
		select {
		case <-exited:
			if strings.Contains(out.String(), "address already in use") {
				return errVersityPort
			}
			return fmt.Errorf("exited before answering: %v\n%s", waitErr, out.String())
		default:
		}
		resp, err := client.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("no answer on %s within %v: %v\n%s", s.Endpoint, versityReadyTimeout, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	client.CloseIdleConnections()
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("testenv: versitygw on %s exited (%v); its output:\n%s", s.Endpoint, waitErr, out.String())
		}
	})
	return nil
}

// syncBuffer is a bytes.Buffer safe for concurrent use: a process writes
// its output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
