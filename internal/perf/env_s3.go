package perf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nats-tiered/nts/internal/tools"
)

// cleanupTimeout bounds the deletion of what a run leaves on shared
// servers, and the stop of a server it started.
const cleanupTimeout = 30 * time.Second

// s3ReadyTimeout bounds how long a started S3 server may take to answer.
const s3ReadyTimeout = 30 * time.Second

// FindVersitygw looks for a versitygw executable: on PATH; else the pinned
// build of the repository's tools module (tools.Build, which builds it when
// it runs in the repository and the tools cache does not hold it yet); else
// the newest build in the tools cache. It returns its path and where it was
// found, or "" and why there is none.
func FindVersitygw() (path, where string) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, "PATH"
	}
	p, built, err := tools.Build("versitygw")
	switch {
	case err == nil && built:
		return p, "built from the pinned tools module"
	case err == nil:
		return p, "pinned build in the tools cache"
	}
	base, cerr := os.UserCacheDir()
	if cerr != nil {
		return "", fmt.Sprintf("not on PATH, and not built (%v)", err)
	}
	matches, _ := filepath.Glob(filepath.Join(base, "nts-tools", "*", "versitygw"))
	var newest time.Time
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		if fi.ModTime().After(newest) {
			path, newest = m, fi.ModTime()
		}
	}
	if path == "" {
		return "", fmt.Sprintf("not on PATH, in the tools cache, nor built from the pinned tools module (%v)", err)
	}
	return path, "a build in the tools cache"
}

// versitygw is a versitygw process serving a directory with its posix
// backend on a loopback port.
type versitygw struct {
	url    string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{} // closed once cmd.Wait returned
	once   sync.Once
}

// errPortTaken is startVersitygwOn's error when the port was taken between
// choosing it and versitygw binding it.
var errPortTaken = errors.New("port in use")

// startVersitygw starts bin over root on a free port of 127.0.0.1, trying
// another port if one is taken meanwhile.
func startVersitygw(ctx context.Context, bin, root string) (*versitygw, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		v, err := startVersitygwOn(ctx, bin, root, port)
		if !errors.Is(err, errPortTaken) {
			return v, err
		}
	}
	return nil, errors.New("no free port after 5 tries")
}

// startVersitygwOn runs bin on port and waits until it answers. On failure
// the process has exited.
func startVersitygwOn(ctx context.Context, bin, root string, port int) (*versitygw, error) {
	v := &versitygw{
		url:    "http://127.0.0.1:" + strconv.Itoa(port),
		out:    &lockedBuffer{},
		exited: make(chan struct{}),
	}
	v.cmd = exec.Command(bin, "--port", "127.0.0.1:"+strconv.Itoa(port), "--region", benchRegion, "--quiet", "posix", root)
	// Credentials through the environment keep them out of process lists.
	v.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+benchAccessKey, "ROOT_SECRET_ACCESS_KEY="+benchSecretKey)
	v.cmd.Stdout, v.cmd.Stderr = v.out, v.out
	// Its own process group: a Ctrl-C meant for the benchmark leaves it to
	// Close, which stops it after the services using it.
	ownProcessGroup(v.cmd)
	if err := v.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = v.cmd.Wait()
		close(v.exited)
	}()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(s3ReadyTimeout)
	for {
		select {
		case <-v.exited:
			if strings.Contains(v.out.String(), "address already in use") {
				return nil, errPortTaken
			}
			return nil, fmt.Errorf("exited before answering (%v): %s", v.cmd.ProcessState, v.out.String())
		default:
		}
		resp, err := client.Get(v.url)
		if err == nil {
			resp.Body.Close()
			return v, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = v.close()
			return nil, fmt.Errorf("no answer on %s within %v: %v", v.url, s3ReadyTimeout, errors.Join(err, ctx.Err()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (v *versitygw) endpoint() string { return v.url }

// close stops the process (SIGTERM, then SIGKILL after 10 s) and waits for
// it. It is idempotent.
func (v *versitygw) close() error {
	v.once.Do(func() {
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.exited
		}
	})
	return nil
}

// createBucket makes bucket on the S3 server at endpoint, with the
// credentials of the servers StartEnv starts.
func createBucket(ctx context.Context, endpoint, bucket string) error {
	cl := s3.New(s3.Options{
		Region:                     benchRegion,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(benchAccessKey, benchSecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	ctx, cancel := context.WithTimeout(ctx, s3ReadyTimeout)
	defer cancel()
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket %s on %s: %w", bucket, endpoint, err)
	}
	return nil
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

// lockedBuffer is a bytes.Buffer safe for concurrent use: a process writes
// its output while its starter reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
