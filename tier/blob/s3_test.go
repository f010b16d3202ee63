package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/blob"
)

// servers starts one of each S3 server for tests that run against both.
func servers(t *testing.T) map[string]testenv.S3Server {
	t.Helper()
	return map[string]testenv.S3Server{"s3mem": runS3Mem(t), "versity": testenv.RunVersity(t)}
}

// randomBlock returns n reproducible pseudo-random bytes.
func randomBlock(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}

// head returns the raw object's metadata.
func head(t *testing.T, srv testenv.S3Server, bucket, key string) *s3.HeadObjectOutput {
	t.Helper()
	out, err := testenv.S3Client(t, srv).HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("HeadObject(%s/%s): %v", bucket, key, err)
	}
	return out
}

// wantNoUploads fails the test if bucket has multipart uploads in progress.
func wantNoUploads(t *testing.T, srv testenv.S3Server, bucket string) {
	t.Helper()
	out, err := testenv.S3Client(t, srv).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left in progress, first %q", len(out.Uploads), aws.ToString(out.Uploads[0].Key))
	}
}

// TestMultipart uploads an object larger than the part size and checks it
// went up in parts and reads back whole and across part boundaries.
func TestMultipart(t *testing.T) {
	const part = blob.MinPartSize
	for name, srv := range servers(t) {
		t.Run(name, func(t *testing.T) {
			rec, hc := newFaultClient(t)
			opts := s3Options(srv)
			opts.PartSize = part
			opts.HTTPClient = hc
			b, bucket := openS3(t, srv, "mp", opts)
			ctx := t.Context()
			blk := randomBlock(2*part + 3)
			if err := b.Put(ctx, "S/big", blk); err != nil {
				t.Fatal(err)
			}
			if c, p := rec.count("uploads"), rec.count("partNumber"); c != 1 || p != 3 {
				t.Fatalf("%d CreateMultipartUpload and %d UploadPart requests, want 1 and 3", c, p)
			}
			got, err := b.Get(ctx, "S/big")
			if err != nil || !bytes.Equal(got, blk) {
				t.Fatalf("Get = %d bytes (equal %v), %v", len(got), bytes.Equal(got, blk), err)
			}
			if size := aws.ToInt64(head(t, srv, bucket, "mp/S/big").ContentLength); size != int64(len(blk)) {
				t.Fatalf("object has %d bytes, want %d", size, len(blk))
			}
			for _, off := range []int64{part - 10, 2*part - 1, 2*part + 1} {
				got, err := b.GetRange(ctx, "S/big", off, 2)
				if err != nil || !bytes.Equal(got, blk[off:off+2]) {
					t.Fatalf("GetRange(%d, 2) = %x, %v; want %x", off, got, err, blk[off:off+2])
				}
			}
			// Exactly one part's worth goes up in a single request.
			if err := b.Put(ctx, "S/one", blk[:part]); err != nil {
				t.Fatal(err)
			}
			if c, p := rec.count("uploads"), rec.count("partNumber"); c != 1 || p != 3 {
				t.Fatalf("a %d-byte Put made multipart requests", part)
			}
			wantNoUploads(t, srv, bucket)
		})
	}
}

// faultClient makes an HTTP client whose connections are real but of which
// chosen ones dial a closed port instead, as if the server had gone away.
// Keep-alives are off, so every request dials.
type faultClient struct {
	refuse atomic.Pointer[func(dial int64) bool] // nil: refuse none
	dials  atomic.Int64                          // dials so far
	closed string                                // 127.0.0.1:<port nobody listens on>

	mu   sync.Mutex
	sent []*url.URL // every request's URL, in order
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// count returns how many requests sent so far have query parameter param.
func (f *faultClient) count(param string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, u := range f.sent {
		if u.Query().Has(param) {
			n++
		}
	}
	return n
}

func newFaultClient(t *testing.T) (*faultClient, *http.Client) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &faultClient{closed: l.Addr().String()}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			n := f.dials.Add(1)
			if fn := f.refuse.Load(); fn != nil && (*fn)(n) {
				addr = f.closed
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return f, &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		f.mu.Lock()
		f.sent = append(f.sent, r.URL)
		f.mu.Unlock()
		return tr.RoundTrip(r)
	})}
}

// set makes dial number n (counting from 1 over the client's life) fail
// when fn(n) is true; nil heals the client.
func (f *faultClient) set(fn func(n int64) bool) {
	if fn == nil {
		f.refuse.Store(nil)
		return
	}
	f.refuse.Store(&fn)
}

// refuseAll makes every dial fail.
func (f *faultClient) refuseAll() { f.set(func(int64) bool { return true }) }

// TestRetries checks failed requests are retried, and that retrying stops
// as soon as the request's context ends.
func TestRetries(t *testing.T) {
	srv := runS3Mem(t)
	fault, hc := newFaultClient(t)
	opts := s3Options(srv)
	opts.HTTPClient = hc
	opts.MaxRetries = 1000
	b, bucket := openS3(t, srv, "", opts)
	ctx := t.Context()
	if err := b.Put(ctx, "S/k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	t.Run("recovers", func(t *testing.T) {
		start := fault.dials.Load()
		fault.set(func(n int64) bool { return n <= start+2 })
		defer fault.set(nil)
		got, err := b.Get(ctx, "S/k")
		if err != nil || string(got) != "v" {
			t.Fatalf("Get after two refused connections = %q, %v", got, err)
		}
		if n := fault.dials.Load() - start; n != 3 {
			t.Fatalf("%d connections, want 3 (two refused, one served)", n)
		}
	})

	t.Run("stops on deadline", func(t *testing.T) {
		fault.refuseAll()
		defer fault.set(nil)
		start, dials := time.Now(), fault.dials.Load()
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := b.Get(dctx, "S/k")
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get with the server gone: %v, want an error wrapping context.DeadlineExceeded", err)
		}
		if took > 5*time.Second {
			t.Fatalf("Get returned %v after its 300ms deadline", took)
		}
		if n := fault.dials.Load() - dials; n < 2 {
			t.Fatalf("%d connection attempts before the deadline, want retries", n)
		}
	})

	t.Run("stops on cancel", func(t *testing.T) {
		fault.refuseAll()
		defer fault.set(nil)
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		err := b.Put(cctx, "S/k2", []byte("v2"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with the server gone: %v, want an error wrapping context.Canceled", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Put returned %v after its context was cancelled at 200ms", took)
		}
	})

	t.Run("open stops on deadline", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := blob.Open(dctx, "s3://bkt?max_retries=1000&path_style=true&endpoint=http://"+fault.closed, s3Options(srv))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Open of a closed port: %v, want an error wrapping context.DeadlineExceeded", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Open returned %v after its 300ms deadline", took)
		}
	})

	t.Run("no retries", func(t *testing.T) {
		opts := s3Options(srv)
		opts.HTTPClient = hc
		b, err := blob.Open(ctx, srv.URL(bucket, "")+"&max_retries=0", opts)
		if err != nil {
			t.Fatal(err)
		}
		fault.refuseAll()
		defer fault.set(nil)
		dials := fault.dials.Load()
		if _, err := b.Get(ctx, "S/k"); err == nil || errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("Get with the server gone: %v, want a connection error", err)
		}
		if n := fault.dials.Load() - dials; n != 1 {
			t.Fatalf("%d connection attempts with max_retries=0, want 1", n)
		}
	})
}

// TestMultipartAbort fails an upload after its first part and checks the
// upload was aborted and no object appeared.
func TestMultipartAbort(t *testing.T) {
	for name, srv := range servers(t) {
		t.Run(name, func(t *testing.T) {
			fault, hc := newFaultClient(t)
			opts := s3Options(srv)
			opts.HTTPClient = hc
			opts.PartSize = blob.MinPartSize
			opts.MaxRetries = -1
			b, bucket := openS3(t, srv, "", opts)
			// Dials: create the upload, part 1, part 2 (refused), abort.
			base := fault.dials.Load()
			fault.set(func(n int64) bool { return n == base+3 })
			err := b.Put(t.Context(), "S/big", randomBlock(2*blob.MinPartSize+1))
			if err == nil || !strings.Contains(err.Error(), "part 2 of 3") {
				t.Fatalf("Put with part 2 refused: %v, want an error naming part 2", err)
			}
			wantNoUploads(t, srv, bucket)
			if _, err := b.Stat(t.Context(), "S/big"); !errors.Is(err, tier.ErrNotFound) {
				t.Fatalf("Stat after a failed upload: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestStorageClass checks the storage class is sent with single and
// multipart uploads. gofakes3 stores and returns it; versitygw's posix
// backend has one class and reports STANDARD whatever was sent, so there
// the test only checks uploads with a class succeed.
func TestStorageClass(t *testing.T) {
	for name, srv := range servers(t) {
		t.Run(name, func(t *testing.T) {
			opts := s3Options(srv)
			opts.PartSize = blob.MinPartSize
			opts.StorageClass = "STANDARD_IA"
			b, bucket := openS3(t, srv, "", opts)
			want := types.StorageClassStandardIa
			if name == "versity" {
				want = types.StorageClassStandard
			}
			for key, size := range map[string]int{"S/small": 1000, "S/multipart": blob.MinPartSize + 1} {
				if err := b.Put(t.Context(), key, randomBlock(size)); err != nil {
					t.Fatal(err)
				}
				if got := head(t, srv, bucket, key).StorageClass; got != want {
					t.Errorf("%s: storage class %q, want %q", key, got, want)
				}
			}
		})
	}
}

// TestPrefixLayout checks where keys land in the bucket and that List sees
// only the store's prefix and only valid keys.
func TestPrefixLayout(t *testing.T) {
	srv := runS3Mem(t)
	b, bucket := openS3(t, srv, "arch/v1", s3Options(srv))
	ctx := t.Context()
	key, err := tier.Key("ORDERS", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, key, []byte("blk")); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt64(head(t, srv, bucket, "arch/v1/"+key).ContentLength); got != 3 {
		t.Fatalf("object arch/v1/%s has %d bytes, want 3", key, got)
	}
	client := testenv.S3Client(t, srv)
	for _, raw := range []string{"arch/v1x/ORDERS/a", "other/ORDERS/b", "arch/v1/ORDERS/", "arch/v1/ORDERS//c"} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(raw), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Key != key || infos[0].Size != 3 {
		t.Fatalf("List = %+v, want only %s", infos, key)
	}
	if got := b.String(); !strings.HasPrefix(got, "s3://"+bucket+"/arch/v1?") || strings.Contains(got, srv.SecretKey) {
		t.Fatalf("String() = %q", got)
	}
}

func TestOpenErrors(t *testing.T) {
	srv := runS3Mem(t)
	ctx := t.Context()
	if _, err := blob.Open(ctx, srv.URL("no-such-bucket", ""), s3Options(srv)); err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Errorf("Open of a missing bucket: %v, want an error naming it", err)
	}
	if _, err := blob.Open(ctx, "s3://bkt?bogus=1", blob.Options{}); !errors.Is(err, blob.ErrInvalidURL) {
		t.Errorf("Open of a bad URL: %v, want ErrInvalidURL", err)
	}
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.Open(ctx, "dir://"+file, blob.Options{}); err == nil {
		t.Error("Open of a dir:// URL naming a file succeeded")
	}
}

// TestBadResponses puts a proxy that spoils ranged GET responses in front of
// a real server: every spoiled answer is an error, never a panic or wrong
// bytes.
func TestBadResponses(t *testing.T) {
	srv := runS3Mem(t)
	bucket := newBucket(t, srv)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		req   func(*http.Request)
		resp  func(*http.Response)
		wantS string // in the error
	}{
		{"range ignored", func(r *http.Request) { r.Header.Del("Range") }, nil, "past the end"},
		{"other range", nil, func(r *http.Response) { r.Header.Set("Content-Range", "bytes 0-4/1000") }, "Content-Range"},
		{"bad content-range", nil, func(r *http.Response) { r.Header.Set("Content-Range", "lines 10-14") }, "Content-Range"},
		{"no content-range", nil, func(r *http.Response) { r.Header.Del("Content-Range") }, "ignored the range"},
		{"short body", nil, func(r *http.Response) {
			r.Body = io.NopCloser(io.LimitReader(r.Body, 2))
		}, "EOF"},
	}
	blk := randomBlock(1000)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proxy := httputil.NewSingleHostReverseProxy(target)
			ranged := func(r *http.Request) bool { return r.Method == http.MethodGet && r.Header.Get("Range") != "" }
			direct := proxy.Director
			proxy.Director = func(r *http.Request) {
				direct(r)
				if c.req != nil && ranged(r) {
					c.req(r)
				}
			}
			proxy.ModifyResponse = func(r *http.Response) error {
				if c.resp != nil && ranged(r.Request) {
					c.resp(r)
				}
				return nil
			}
			ps := httptest.NewServer(proxy)
			t.Cleanup(ps.Close)
			opts := s3Options(srv)
			opts.MaxRetries = -1
			b, err := blob.Open(t.Context(), testenv.S3Server{Endpoint: ps.URL, Region: srv.Region}.URL(bucket, c.name), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Put(t.Context(), "S/k", blk); err != nil {
				t.Fatal(err)
			}
			got, err := b.GetRange(t.Context(), "S/k", 10, 5)
			if err == nil || errors.Is(err, tier.ErrNotFound) || !strings.Contains(err.Error(), c.wantS) {
				t.Fatalf("GetRange through a spoiling proxy = %x, %v; want an error mentioning %q", got, err, c.wantS)
			}
		})
	}
}
