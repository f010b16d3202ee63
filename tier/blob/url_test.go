package blob_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-tiered/nts/tier/blob"
)

func TestParseURL(t *testing.T) {
	s3 := func(bucket, prefix string, o blob.Options) blob.Config {
		return blob.Config{Scheme: blob.SchemeS3, Bucket: bucket, Prefix: prefix, Options: o}
	}
	def := blob.Options{PartSize: blob.DefaultPartSize, MaxRetries: blob.DefaultMaxRetries}
	with := func(f func(*blob.Options)) blob.Options {
		o := def
		f(&o)
		return o
	}
	cases := []struct {
		url  string
		opts blob.Options
		want blob.Config
	}{
		{"dir:///var/lib/nts", blob.Options{}, blob.Config{Scheme: blob.SchemeDir, Dir: "/var/lib/nts"}},
		{"dir:///a/b/../c/", blob.Options{}, blob.Config{Scheme: blob.SchemeDir, Dir: "/a/c"}},
		{"DIR:///x", blob.Options{}, blob.Config{Scheme: blob.SchemeDir, Dir: "/x"}},
		{"dir:///x", blob.Options{Region: "ignored"}, blob.Config{Scheme: blob.SchemeDir, Dir: "/x"}},
		{"s3://bucket", blob.Options{}, s3("bucket", "", def)},
		{"s3://bucket/", blob.Options{}, s3("bucket", "", def)},
		{"s3://bucket/a/b/", blob.Options{}, s3("bucket", "a/b", def)},
		{"s3://my.bucket-1/nts", blob.Options{}, s3("my.bucket-1", "nts", def)},
		{
			"s3://bkt/p?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true&storage_class=STANDARD_IA&part_size=5MiB&max_retries=0",
			blob.Options{},
			s3("bkt", "p", blob.Options{
				Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", PathStyle: true,
				StorageClass: "STANDARD_IA", PartSize: 5 << 20, MaxRetries: 0,
			}),
		},
		// The URL's parameters win; fields it does not mention stay.
		{
			"s3://bkt?region=eu-west-1&max_retries=7",
			blob.Options{Region: "us-west-2", PathStyle: true, PartSize: 8 << 20, MaxRetries: 1, AccessKey: "ak", SecretKey: "sk"},
			s3("bkt", "", blob.Options{Region: "eu-west-1", PathStyle: true, PartSize: 8 << 20, MaxRetries: 7, AccessKey: "ak", SecretKey: "sk"}),
		},
		{"s3://bkt?path_style=false", blob.Options{PathStyle: true}, s3("bkt", "", def)},
		{"s3://bkt", blob.Options{MaxRetries: -1}, s3("bkt", "", with(func(o *blob.Options) { o.MaxRetries = 0 }))},
		{"s3://bkt", blob.Options{MaxRetries: 10}, s3("bkt", "", with(func(o *blob.Options) { o.MaxRetries = 10 }))},
		{"s3://bkt?endpoint=https://s3.example.com/", blob.Options{}, s3("bkt", "", with(func(o *blob.Options) { o.Endpoint = "https://s3.example.com/" }))},
		{"s3://bkt?part_size=16777216", blob.Options{}, s3("bkt", "", def)},
		{"s3://bkt?part_size=16m", blob.Options{}, s3("bkt", "", def)},
		{"s3://bkt?part_size=20MB", blob.Options{}, s3("bkt", "", with(func(o *blob.Options) { o.PartSize = 20_000_000 }))},
		{"s3://bkt?part_size=1GiB", blob.Options{}, s3("bkt", "", with(func(o *blob.Options) { o.PartSize = 1 << 30 }))},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			got, err := blob.ParseURL(c.url, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("ParseURL = %+v\nwant       %+v", got, c.want)
			}
			// String gives a URL that parses back to the same store.
			again, err := blob.ParseURL(got.String(), blob.Options{
				AccessKey: got.Options.AccessKey, SecretKey: got.Options.SecretKey,
				PartSize: got.Options.PartSize, MaxRetries: got.Options.MaxRetries,
			})
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", got.String(), err)
			}
			if again.Options.MaxRetries == blob.DefaultMaxRetries && got.Options.MaxRetries == 0 {
				again.Options.MaxRetries = 0 // 0 in Options means the default
			}
			if again != got {
				t.Fatalf("ParseURL(%q) = %+v, want %+v", got.String(), again, got)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	cases := []struct {
		url  string
		opts blob.Options
		want string // in the message
	}{
		{"", blob.Options{}, "no scheme"},
		{"/var/lib/nts", blob.Options{}, "no scheme"},
		{"file:///x", blob.Options{}, `scheme "file"`},
		{"dir:relative", blob.Options{}, "want dir:///abs/path"},
		{"dir://relative/path", blob.Options{}, "three slashes"},
		{"dir://", blob.Options{}, "absolute path"},
		{"dir:///x?part_size=5MiB", blob.Options{}, "no parameters"},
		{"s3://", blob.Options{}, "no bucket"},
		{"s3:///prefix", blob.Options{}, "no bucket"},
		{"s3://bkt:9000/p", blob.Options{}, "port"},
		{"s3://ab", blob.Options{}, "3 to 63"},
		{"s3://" + strings.Repeat("b", 64), blob.Options{}, "3 to 63"},
		{"s3://b~kt", blob.Options{}, "has '~'"},
		{"s3://bkt?nope=1", blob.Options{}, `unknown parameter "nope"`},
		{"s3://bkt?region=a&region=b", blob.Options{}, `"region" given 2 times`},
		{"s3://bkt?path_style=maybe", blob.Options{}, "path_style"},
		{"s3://bkt?part_size=1MiB", blob.Options{}, "part_size"},
		{"s3://bkt?part_size=lots", blob.Options{}, "part_size"},
		{"s3://bkt?part_size=6GiB", blob.Options{}, "part_size"},
		{"s3://bkt?part_size=-5MiB", blob.Options{}, "part_size"},
		{"s3://bkt?part_size=99999999999GiB", blob.Options{}, "part_size"},
		{"s3://bkt", blob.Options{PartSize: 1}, "part_size"},
		{"s3://bkt?max_retries=-1", blob.Options{}, "max_retries"},
		{"s3://bkt?max_retries=x", blob.Options{}, "max_retries"},
		{"s3://bkt?endpoint=ftp://host", blob.Options{}, "endpoint"},
		{"s3://bkt?endpoint=127.0.0.1:9000", blob.Options{}, "endpoint"},
		{"s3://bkt?endpoint=http://", blob.Options{}, "endpoint"},
		{"s3://bkt", blob.Options{Endpoint: "http://h?x=1"}, "endpoint"},
		{"s3://bkt?region=eu%20west", blob.Options{}, "region"},
		{"s3://bkt?storage_class=standard%20ia", blob.Options{}, "storage_class"},
		{"s3://bkt/a/../b", blob.Options{}, "prefix"},
		{"s3://bkt/a//b", blob.Options{}, "prefix"},
		{"s3://bkt/a%5Cb", blob.Options{}, "prefix"},
		{"s3://user:secret@bkt/p", blob.Options{}, "credentials"},
		{"s3://bkt#frag", blob.Options{}, "fragment"},
		{"s3://bkt", blob.Options{AccessKey: "ak"}, "access key"},
		{"s3://bkt", blob.Options{SecretKey: "sk"}, "access key"},
		{"s3://bkt", blob.Options{SessionToken: "tok"}, "session token"},
		{"s3://bkt/%zz", blob.Options{}, "invalid URL"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			got, err := blob.ParseURL(c.url, c.opts)
			if !errors.Is(err, blob.ErrInvalidURL) {
				t.Fatalf("ParseURL = %+v, %v; want an error wrapping ErrInvalidURL", got, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
			if strings.Contains(err.Error(), "user:secret") {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}

func TestOptionsStringRedacts(t *testing.T) {
	cfg, err := blob.ParseURL("s3://bkt/p", blob.Options{AccessKey: "AKID", SecretKey: "s3cr3t", SessionToken: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), cfg.Options.String(), cfg.String()} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "t0ken") {
			t.Fatalf("%q shows a secret", s)
		}
	}
	if s := cfg.Options.String(); !strings.Contains(s, "AccessKey:AKID") || !strings.Contains(s, "SecretKey:REDACTED") {
		t.Fatalf("Options.String() = %q", s)
	}
}
