package blob

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-tiered/nts/tier"
)

// ErrInvalidURL is returned (wrapped) for a blob URL or option that cannot
// name a store. The message names the part or parameter at fault.
var ErrInvalidURL = errors.New("blob: invalid URL")

// URL schemes of the two backends.
const (
	SchemeDir = "dir"
	SchemeS3  = "s3"
)

// Multipart limits of S3: every part but the last is at least MinPartSize
// bytes, at most MaxPartSize, and an upload has at most maxParts parts.
const (
	MinPartSize     = 5 << 20
	MaxPartSize     = 5 << 30
	DefaultPartSize = 16 << 20
	maxParts        = 10000
)

// DefaultMaxRetries is how many times a failed S3 request is retried when
// Options.MaxRetries is 0.
const DefaultMaxRetries = 3

// DefaultRegion is the region used when neither the options, the URL nor the
// AWS configuration (environment, shared config) name one.
const DefaultRegion = "us-east-1"

// Options configures an S3 store. Query parameters of the URL take
// precedence: a parameter present in the URL replaces the field, an absent
// one leaves it as set here. Credentials are never read from the URL. The
// options are ignored for a dir:// URL.
type Options struct {
	// Endpoint is the S3 endpoint URL, "http(s)://host[:port]"; empty
	// means AWS S3 (or AWS_ENDPOINT_URL). URL parameter "endpoint".
	Endpoint string
	// Region is the signing region; empty means the AWS configuration's,
	// else DefaultRegion. URL parameter "region".
	Region string
	// PathStyle addresses buckets as <endpoint>/<bucket> rather than
	// <bucket>.<endpoint>, as most S3-compatible servers need. URL
	// parameter "path_style" (true or false).
	PathStyle bool
	// AccessKey, SecretKey and SessionToken are static credentials. When
	// AccessKey is empty the AWS default credential chain is used
	// (environment, shared files, web identity, IMDS).
	AccessKey, SecretKey, SessionToken string
	// StorageClass is sent with every upload ("STANDARD_IA", "GLACIER_IR",
	// ...); empty leaves the bucket's default. URL parameter
	// "storage_class".
	StorageClass string
	// PartSize is the multipart part size: objects larger than it are
	// uploaded in parts of this size. 0 means DefaultPartSize; it must lie
	// within MinPartSize..MaxPartSize. URL parameter "part_size", in bytes
	// or with a KiB, MiB or GiB suffix ("16MiB").
	PartSize int64
	// MaxRetries is how many times a failed request is retried, with
	// exponential backoff and jitter, while its context allows. 0 means
	// DefaultMaxRetries; a negative value disables retries. URL parameter
	// "max_retries", where 0 disables retries.
	MaxRetries int
	// HTTPClient, if not nil, sends the requests. It is used as it is:
	// AWS_CA_BUNDLE is not added to its roots.
	HTTPClient *http.Client
}

// String describes the options for logs, with the secret key and session
// token redacted.
func (o Options) String() string {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "REDACTED"
	}
	return fmt.Sprintf("{Endpoint:%s Region:%s PathStyle:%t AccessKey:%s SecretKey:%s SessionToken:%s StorageClass:%s PartSize:%d MaxRetries:%d HTTPClient:%t}",
		o.Endpoint, o.Region, o.PathStyle, o.AccessKey, redact(o.SecretKey), redact(o.SessionToken),
		o.StorageClass, o.PartSize, o.MaxRetries, o.HTTPClient != nil)
}

// Config is a parsed blob URL with its options resolved.
type Config struct {
	// Scheme is SchemeDir or SchemeS3.
	Scheme string
	// Dir is the absolute directory of a dir:// store.
	Dir string
	// Bucket and Prefix locate an s3:// store's objects: key k is object
	// Prefix+"/"+k, or k when Prefix is empty. Prefix has no leading or
	// trailing '/'.
	Bucket, Prefix string
	// Options are an s3:// store's options with the URL's parameters
	// applied and defaults filled in: PartSize is set and MaxRetries is
	// the number of retries (0 for none).
	Options Options
}

// String returns the URL of the store without credentials.
func (c Config) String() string {
	if c.Scheme == SchemeDir {
		return (&url.URL{Scheme: SchemeDir, Path: filepath.ToSlash(c.Dir)}).String()
	}
	q := url.Values{}
	o := c.Options
	if o.Endpoint != "" {
		q.Set("endpoint", o.Endpoint)
	}
	if o.Region != "" {
		q.Set("region", o.Region)
	}
	if o.PathStyle {
		q.Set("path_style", "true")
	}
	if o.StorageClass != "" {
		q.Set("storage_class", o.StorageClass)
	}
	u := url.URL{Scheme: SchemeS3, Host: c.Bucket, Path: "/" + c.Prefix, RawQuery: q.Encode()}
	return u.String()
}

// s3Params are the query parameters an s3:// URL may have.
var s3Params = []string{"endpoint", "region", "path_style", "storage_class", "part_size", "max_retries"}

// ParseURL parses and validates a blob URL without connecting to anything:
//
//	dir:///abs/path
//	s3://bucket[/prefix][?endpoint=URL&region=R&path_style=true&storage_class=C&part_size=16MiB&max_retries=N]
//
// and resolves opts against the URL's query parameters (a parameter in the
// URL wins over the field in opts). Errors wrap ErrInvalidURL and name the
// part or parameter at fault.
func ParseURL(rawURL string, opts Options) (Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	switch {
	case u.Opaque != "":
		return Config{}, fmt.Errorf("%w: %q: want %s:///abs/path or %s://bucket/prefix", ErrInvalidURL, rawURL, SchemeDir, SchemeS3)
	case u.User != nil:
		return Config{}, fmt.Errorf("%w: %q: credentials do not belong in the URL; set them in the options or the AWS environment", ErrInvalidURL, u.Redacted())
	case u.Fragment != "":
		return Config{}, fmt.Errorf("%w: %q: unexpected fragment", ErrInvalidURL, rawURL)
	}
	switch u.Scheme {
	case SchemeDir:
		return parseDir(u)
	case SchemeS3:
		return parseS3(u, opts)
	case "":
		return Config{}, fmt.Errorf("%w: %q has no scheme: want %s:// or %s://", ErrInvalidURL, rawURL, SchemeDir, SchemeS3)
	default:
		return Config{}, fmt.Errorf("%w: scheme %q: want %s or %s", ErrInvalidURL, u.Scheme, SchemeDir, SchemeS3)
	}
}

func parseDir(u *url.URL) (Config, error) {
	if u.Host != "" {
		return Config{}, fmt.Errorf("%w: dir URL has host %q: write dir:///abs/path (three slashes)", ErrInvalidURL, u.Host)
	}
	if u.RawQuery != "" {
		return Config{}, fmt.Errorf("%w: dir URL takes no parameters, got %q", ErrInvalidURL, u.RawQuery)
	}
	if u.Path == "" || !path.IsAbs(u.Path) {
		return Config{}, fmt.Errorf("%w: dir URL needs an absolute path, got %q", ErrInvalidURL, u.Path)
	}
	return Config{Scheme: SchemeDir, Dir: filepath.Clean(filepath.FromSlash(u.Path))}, nil
}

func parseS3(u *url.URL, opts Options) (Config, error) {
	c := Config{Scheme: SchemeS3, Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Options: opts}
	if err := validateBucket(u); err != nil {
		return Config{}, err
	}
	if c.Prefix != "" {
		if err := tier.ValidateKey(c.Prefix); err != nil {
			return Config{}, fmt.Errorf("%w: prefix: %w", ErrInvalidURL, err)
		}
	}
	retriesSet := false
	for name, vals := range u.Query() {
		if len(vals) != 1 {
			return Config{}, fmt.Errorf("%w: parameter %q given %d times", ErrInvalidURL, name, len(vals))
		}
		v := vals[0]
		var err error
		switch name {
		case "endpoint":
			c.Options.Endpoint = v
		case "region":
			c.Options.Region = v
		case "path_style":
			c.Options.PathStyle, err = strconv.ParseBool(v)
		case "storage_class":
			c.Options.StorageClass = v
		case "part_size":
			c.Options.PartSize, err = parseSize(v)
		case "max_retries":
			c.Options.MaxRetries, err = strconv.Atoi(v)
			if err == nil && c.Options.MaxRetries < 0 {
				err = errors.New("negative")
			}
			retriesSet = true
		default:
			return Config{}, fmt.Errorf("%w: unknown parameter %q (known: %s)", ErrInvalidURL, name, strings.Join(s3Params, ", "))
		}
		if err != nil {
			return Config{}, fmt.Errorf("%w: parameter %s=%q: %v", ErrInvalidURL, name, v, err)
		}
	}
	if err := resolveOptions(&c.Options, retriesSet); err != nil {
		return Config{}, err
	}
	return c, nil
}

// validateBucket checks the host part of an s3:// URL is a bucket name:
// S3's rules (3 to 63 lowercase letters, digits, '.' and '-') loosened to
// allow the uppercase letters and '_' some compatible servers accept.
func validateBucket(u *url.URL) error {
	b := u.Host
	switch {
	case b == "":
		return fmt.Errorf("%w: s3 URL has no bucket: want s3://bucket/prefix", ErrInvalidURL)
	case u.Port() != "" || strings.Contains(b, ":"):
		return fmt.Errorf("%w: bucket %q has a port: the server goes in the endpoint parameter", ErrInvalidURL, b)
	case len(b) < 3 || len(b) > 63:
		return fmt.Errorf("%w: bucket %q: want 3 to 63 characters", ErrInvalidURL, b)
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("%w: bucket %q has %q", ErrInvalidURL, b, r)
		}
	}
	return nil
}

// resolveOptions validates o and fills its defaults. retriesFromURL says
// MaxRetries came from the URL, where 0 means none rather than the default.
func resolveOptions(o *Options, retriesFromURL bool) error {
	if o.Endpoint != "" {
		e, err := url.Parse(o.Endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.RawQuery != "" || e.Fragment != "" || e.User != nil {
			return fmt.Errorf("%w: endpoint %q: want http(s)://host[:port]", ErrInvalidURL, o.Endpoint)
		}
	}
	for _, r := range o.Region {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%w: region %q has %q", ErrInvalidURL, o.Region, r)
		}
	}
	for _, r := range o.StorageClass {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("%w: storage_class %q: want upper-case letters, digits and '_' (STANDARD_IA)", ErrInvalidURL, o.StorageClass)
		}
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize || o.PartSize > MaxPartSize {
		return fmt.Errorf("%w: part_size %d: want %d (5MiB) to %d (5GiB)", ErrInvalidURL, o.PartSize, MinPartSize, int64(MaxPartSize))
	}
	switch {
	case retriesFromURL:
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	if (o.AccessKey == "") != (o.SecretKey == "") {
		return fmt.Errorf("%w: options: access key and secret key go together", ErrInvalidURL)
	}
	if o.SessionToken != "" && o.AccessKey == "" {
		return fmt.Errorf("%w: options: a session token needs an access key and secret key", ErrInvalidURL)
	}
	return nil
}

// sizeUnits are the suffixes parseSize accepts, longest first so that
// "mib" is tried before "b".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// parseSize parses a byte count: digits with an optional unit suffix,
// binary (KiB, MiB, GiB, or K, M, G) or decimal (KB, MB, GB), any case.
func parseSize(s string) (int64, error) {
	lower := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(lower, u.suffix); ok {
			lower, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size in bytes (16777216) or with a unit (16MiB)")
	}
	if n > (1<<63-1)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}
