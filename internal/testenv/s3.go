package testenv

import (
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
	return RunVersityServer(t).S3Server
}

// VersityServer is a versitygw process, started by RunVersityServer, that a
// test can stop and start again on the same port over the same directory,
// as an S3 outage would. Its methods are safe for concurrent use, but Start
// fails the test and so must be called from the test's goroutine.
type VersityServer struct {
	S3Server
	// Dir is the directory the posix backend serves: object k of bucket b
	// is the file Dir/b/k once its upload completed.
	Dir string

	t    testing.TB
	bin  string
	port int

	mu   sync.Mutex
	proc *versityProc // nil while stopped
	logs []string     // output of the processes that exited
}

// RunVersityServer is RunVersity returning the server's handle, to stop it
// and start it again during the test.
func RunVersityServer(t testing.TB) *VersityServer {
	t.Helper()
	v := &VersityServer{
		S3Server: S3Server{
			AccessKey: "nts-versity-access",
			SecretKey: "nts-versity-secret",
			Region:    s3DefaultRegion,
		},
		Dir: t.TempDir(),
		t:   t,
		bin: Tool(t, "versitygw"),
	}
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		v.port = port
		v.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		p, err := startVersity(v.bin, v.Dir, port, v.S3Server)
		if err == nil {
			v.proc = p
			t.Cleanup(v.cleanup)
			return v
		}
		if !errors.Is(err, errVersityPort) {
			t.Fatalf("testenv: versitygw: %v", err)
		}
	}
	t.Fatal("testenv: versitygw: no free port after 5 tries")
	return nil
}

// Stop kills the server at once (SIGKILL: requests in flight are cut off,
// as in a crash or a network outage) and waits for it to exit. The files
// it serves stay. Stop is idempotent.
func (v *VersityServer) Stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc == nil {
		return
	}
	v.proc.kill()
	v.logs = append(v.logs, v.proc.report())
	v.proc = nil
}

// Start starts the server again, on the same port over the same directory,
// and returns once it answers; it does nothing if the server runs. It fails
// the test if the server cannot start (another process took the port).
func (v *VersityServer) Start() {
	v.t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc != nil {
		return
	}
	p, err := startVersity(v.bin, v.Dir, v.port, v.S3Server)
	if err != nil {
		v.t.Fatalf("testenv: restart versitygw on %s: %v", v.Endpoint, err)
	}
	v.proc = p
}

// cleanup stops the server gracefully and, if the test failed, logs the
// output of every process it ran.
func (v *VersityServer) cleanup() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc != nil {
		v.proc.stop()
		v.logs = append(v.logs, v.proc.report())
		v.proc = nil
	}
	if v.t.Failed() {
		for i, out := range v.logs {
			v.t.Logf("testenv: versitygw on %s, run %d, %s", v.Endpoint, i+1, out)
		}
	}
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

// versityProc is one running versitygw process.
type versityProc struct {
	cmd     *exec.Cmd
	out     *SyncBuffer
	exited  chan struct{} // closed once Wait returned
	waitErr error         // Wait's result, set before exited is closed
}

// stop asks the process to exit and waits, killing it after 10s.
func (p *versityProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// report describes how the exited process ended and what it wrote.
func (p *versityProc) report() string {
	return fmt.Sprintf("exited (%v); its output:\n%s", p.waitErr, p.out.String())
}

// kill kills the process and waits for it to exit.
func (p *versityProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// startVersity runs versitygw on port and waits until it answers. On
// failure the process has exited.
func startVersity(bin, root string, port int, s S3Server) (*versityProc, error) {
	p := &versityProc{out: &SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin,
		"--port", "127.0.0.1:"+strconv.Itoa(port),
		"--region", s.Region,
		"--quiet",
		"posix", root)
	// Credentials through the environment keep them out of process lists.
	p.cmd.Env = append(os.Environ(),
		"ROOT_ACCESS_KEY_ID="+s.AccessKey,
		"ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()

	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(versityReadyTimeout)
	for {
		select {
		case <-p.exited:
			if strings.Contains(p.out.String(), "address already in use") {
				return nil, errVersityPort
			}
			return nil, fmt.Errorf("exited before answering: %v\n%s", p.waitErr, p.out.String())
		default:
		}
		resp, err := client.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("no answer on %s within %v: %v\n%s", s.Endpoint, versityReadyTimeout, err, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
