package service

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/blob"
)

// ErrConfig is wrapped by every configuration error; the message names the
// field's path (e.g. "tiers.memory.max_bytes").
var ErrConfig = errors.New("config")

// Config is the whole configuration of one nts replica. The zero value is not
// ready for use: start from DefaultConfig or LoadConfig, which fill defaults.
// The YAML form is documented field by field in the README.
type Config struct {
	// DataDir holds everything this replica keeps locally by default: the
	// embedded server's store, the file tier and the dir:// blob tier.
	DataDir string       `yaml:"data_dir"`
	NATS    NATSConfig   `yaml:"nats"`
	Index   IndexConfig  `yaml:"index"`
	Service SvcConfig    `yaml:"service"`
	Block   BlockConfig  `yaml:"block"`
	Tiers   TiersConfig  `yaml:"tiers"`
	Streams []StreamSpec `yaml:"streams"`
}

// NATSConfig says which NATS server to use. With no URL, nts runs an
// embedded nats-server with JetStream.
type NATSConfig struct {
	URL   string    `yaml:"url"`
	Creds string    `yaml:"creds"`
	NKey  string    `yaml:"nkey"`
	TLS   TLSConfig `yaml:"tls"`
	// Name is the client connection name shown by the server.
	Name     string         `yaml:"name"`
	Embedded EmbeddedConfig `yaml:"embedded"`
}

// TLSConfig holds client TLS settings for an external server.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

// EmbeddedConfig configures the embedded server used when no URL is given.
type EmbeddedConfig struct {
	// Listen is the client address, host:port (default "0.0.0.0:4222").
	Listen string `yaml:"listen"`
	// StoreDir is JetStream's store (default <data_dir>/nats).
	StoreDir string `yaml:"store_dir"`
	// MaxPayload is the server's max_payload (default 1MiB, the server's own).
	MaxPayload Size `yaml:"max_payload"`
}

// IndexConfig configures the JetStream KV bucket holding the block index.
type IndexConfig struct {
	Bucket   string `yaml:"bucket"`
	Replicas int    `yaml:"replicas"`
	// Storage is "file" or "memory".
	Storage string   `yaml:"storage"`
	LockTTL Duration `yaml:"lock_ttl"`
	// MaxBytes bounds the index and lock buckets nts creates, for an
	// account that requires a max_bytes on every stream; 0: none.
	MaxBytes Size `yaml:"max_bytes"`
}

// SvcConfig configures the micro service.
type SvcConfig struct {
	// Prefix is the first token of every endpoint subject (default "nts").
	Prefix string `yaml:"prefix"`
	// QueueGroup is shared by every replica's query and admin endpoints.
	QueueGroup string `yaml:"queue_group"`
	// MaxConcurrent bounds the requests one replica serves at once.
	MaxConcurrent int `yaml:"max_concurrent"`
	// RequestTimeout bounds the time spent on one request.
	RequestTimeout Duration `yaml:"request_timeout"`
	// InstanceID names this replica in locks and commits; it must be
	// unique among running replicas. Not read from YAML: when empty, Run
	// uses a random one (the micro service's instance id once the service
	// registers one); a program embedding the service may set its own.
	InstanceID string `yaml:"-"`
}

// BlockConfig is the default block policy; streams may override it.
type BlockConfig struct {
	TargetSize Size `yaml:"target_size"`
	// FrameSize is the raw bytes per compressed frame. 0 (the default) sizes
	// frames by the stream's kind: KVFrameSize for KV buckets, whose reads
	// are mostly of one key, so that a read decodes a small frame, and
	// DefaultFrameSize for the others, read mostly in ranges and object
	// chunks, where larger frames compress better.
	FrameSize Size `yaml:"frame_size"`
	// MaxLinger is how long a block's oldest message waits before the
	// block seals. A block holding a quarter of TargetSize seals sooner,
	// once its stream is quiet for MaxLinger/4 (at most 100ms); so does,
	// whatever it holds, one caught up with its stream whose oldest
	// message was stored MaxLinger ago or more (a backlog's tail).
	MaxLinger   Duration `yaml:"max_linger"`
	Compression string   `yaml:"compression"`
}

// TiersConfig enables and bounds the three tiers, hottest first.
type TiersConfig struct {
	Memory TierConfig `yaml:"memory"`
	File   TierConfig `yaml:"file"`
	Blob   TierConfig `yaml:"blob"`
	// PolicyInterval is how often eviction runs, and the repair of block
	// copies that reads found corrupt.
	PolicyInterval Duration `yaml:"policy_interval"`
}

// TierConfig configures one tier. Dir applies to the file tier, URL and the
// S3 fields to the blob tier.
type TierConfig struct {
	Enabled   *bool    `yaml:"enabled"`
	MaxAge    Duration `yaml:"max_age"`
	MaxBytes  Size     `yaml:"max_bytes"`
	MaxBlocks int      `yaml:"max_blocks"`
	// Dir is the file tier's directory (default <data_dir>/blocks).
	Dir string `yaml:"dir"`
	// URL is the blob tier's location: s3://bucket/prefix?... or dir:///path
	// (default dir://<data_dir>/blob).
	URL string `yaml:"url"`
	// AccessKey and SecretKey are static S3 keys; empty uses the default
	// AWS credential chain.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
}

// On reports whether the tier is enabled (the default).
func (t TierConfig) On() bool { return t.Enabled == nil || *t.Enabled }

// StreamSpec selects streams to archive and overrides the default policy
// for them. Name is a stream name or a pattern with * and ? (path.Match).
type StreamSpec struct {
	Name string `yaml:"name"`
	// Kind overrides detection from the name: "plain", "kv" or "obj".
	Kind string `yaml:"kind"`
	// Consumer is the durable consumer's name (default "nts-<stream>"):
	// the archive's cursor. The stream is read through "<Consumer>-reader"
	// where the server resets consumers (see the package doc).
	Consumer string `yaml:"consumer"`
	// Mirror: "auto" (mirror WorkQueue streams), "always" or "never".
	Mirror string             `yaml:"mirror"`
	Block  *BlockConfig       `yaml:"block"`
	Tiers  *StreamTiersConfig `yaml:"tiers"`
}

// StreamTiersConfig overrides the eviction policy per tier for one stream.
type StreamTiersConfig struct {
	Memory *TierPolicy `yaml:"memory"`
	File   *TierPolicy `yaml:"file"`
	Blob   *TierPolicy `yaml:"blob"`
}

// TierPolicy is the eviction part of a tier's configuration.
type TierPolicy struct {
	MaxAge    Duration `yaml:"max_age"`
	MaxBytes  Size     `yaml:"max_bytes"`
	MaxBlocks int      `yaml:"max_blocks"`
}

// DefaultConfig returns the zero-config default: an embedded server and all
// three tiers under ./nts-data.
func DefaultConfig() Config {
	var c Config
	c.Complete()
	return c
}

// Complete fills every field left empty with its default. Defaults derived
// from data_dir (the embedded store, the file and blob tiers) follow it.
func (c *Config) Complete() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.DataDir, "nts-data")
	def(&c.NATS.Name, "nts")
	def(&c.NATS.Embedded.Listen, "0.0.0.0:4222")
	def(&c.NATS.Embedded.StoreDir, filepath.Join(c.DataDir, "nats"))
	def(&c.Index.Bucket, "nts_index")
	def(&c.Index.Storage, "file")
	if c.Index.Replicas == 0 {
		c.Index.Replicas = 1
	}
	if c.Index.LockTTL == 0 {
		c.Index.LockTTL = Duration(10 * time.Second)
	}
	def(&c.Service.Prefix, "nts")
	def(&c.Service.QueueGroup, "nts")
	if c.Service.MaxConcurrent == 0 {
		c.Service.MaxConcurrent = 64
	}
	if c.Service.RequestTimeout == 0 {
		c.Service.RequestTimeout = Duration(30 * time.Second)
	}
	if c.Block.TargetSize == 0 {
		c.Block.TargetSize = 8 << 20
	}
	if c.Block.MaxLinger == 0 {
		c.Block.MaxLinger = Duration(10 * time.Second)
	}
	def(&c.Block.Compression, "s2")
	if c.Tiers.Memory.MaxBytes == 0 {
		c.Tiers.Memory.MaxBytes = 256 << 20
	}
	def(&c.Tiers.File.Dir, filepath.Join(c.DataDir, "blocks"))
	if c.Tiers.Blob.URL == "" {
		if abs, err := filepath.Abs(filepath.Join(c.DataDir, "blob")); err == nil {
			c.Tiers.Blob.URL = "dir://" + filepath.ToSlash(abs)
		}
	}
	if c.Tiers.PolicyInterval == 0 {
		c.Tiers.PolicyInterval = Duration(time.Minute)
	}
}

// Validate checks every field and returns the first problem, naming the
// field's path. It touches no file and no network.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if c.NATS.URL == "" {
		if _, _, err := net.SplitHostPort(c.NATS.Embedded.Listen); err != nil {
			return bad("nats.embedded.listen", "%q is not host:port", c.NATS.Embedded.Listen)
		}
	} else if c.NATS.Creds != "" && c.NATS.NKey != "" {
		return bad("nats.creds", "set creds or nkey, not both")
	}
	if (c.NATS.TLS.Cert == "") != (c.NATS.TLS.Key == "") {
		return bad("nats.tls", "cert and key go together")
	}
	if c.NATS.Embedded.MaxPayload < 0 || c.NATS.Embedded.MaxPayload > 64<<20 {
		return bad("nats.embedded.max_payload", "%v is not between 0 and 64MiB", c.NATS.Embedded.MaxPayload)
	}
	if c.Index.Bucket == "" || strings.ContainsAny(c.Index.Bucket, " .*>/\\") {
		return bad("index.bucket", "%q is not a valid bucket name", c.Index.Bucket)
	}
	if c.Index.Replicas < 1 || c.Index.Replicas > 5 {
		return bad("index.replicas", "%d is not between 1 and 5", c.Index.Replicas)
	}
	if c.Index.Storage != "file" && c.Index.Storage != "memory" {
		return bad("index.storage", "%q is not file or memory", c.Index.Storage)
	}
	if c.Index.LockTTL < Duration(time.Second) {
		return bad("index.lock_ttl", "%v is shorter than 1s", c.Index.LockTTL)
	}
	if c.Index.MaxBytes < 0 {
		return bad("index.max_bytes", "%v is negative", c.Index.MaxBytes)
	}
	if c.Service.Prefix == "" || strings.ContainsAny(c.Service.Prefix, " *>") ||
		strings.HasPrefix(c.Service.Prefix, ".") || strings.HasSuffix(c.Service.Prefix, ".") {
		return bad("service.prefix", "%q is not a subject prefix", c.Service.Prefix)
	}
	if c.Service.QueueGroup == "" || strings.ContainsAny(c.Service.QueueGroup, " *>") {
		return bad("service.queue_group", "%q is not a queue group", c.Service.QueueGroup)
	}
	if c.Service.MaxConcurrent < 1 {
		return bad("service.max_concurrent", "%d is less than 1", c.Service.MaxConcurrent)
	}
	if c.Service.RequestTimeout <= 0 {
		return bad("service.request_timeout", "must be positive")
	}
	if err := c.Block.validate("block"); err != nil {
		return err
	}
	if !c.Tiers.Memory.On() && !c.Tiers.File.On() && !c.Tiers.Blob.On() {
		return bad("tiers", "no tier is enabled")
	}
	for name, t := range map[string]TierConfig{"memory": c.Tiers.Memory, "file": c.Tiers.File, "blob": c.Tiers.Blob} {
		if err := t.policy().validate("tiers." + name); err != nil {
			return err
		}
	}
	if c.Tiers.File.On() && c.Tiers.File.Dir == "" {
		return bad("tiers.file.dir", "empty")
	}
	if c.Tiers.Blob.On() {
		if _, err := blob.ParseURL(c.Tiers.Blob.URL, blob.Options{AccessKey: c.Tiers.Blob.AccessKey, SecretKey: c.Tiers.Blob.SecretKey}); err != nil {
			return bad("tiers.blob.url", "%v", err)
		}
	}
	if c.Tiers.PolicyInterval < Duration(time.Second) {
		return bad("tiers.policy_interval", "%v is shorter than 1s", c.Tiers.PolicyInterval)
	}
	seen := map[string]bool{}
	for i, s := range c.Streams {
		p := fmt.Sprintf("streams[%d]", i)
		if err := s.validate(p); err != nil {
			return err
		}
		if seen[s.Name] {
			return bad(p+".name", "%q is listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (b BlockConfig) validate(p string) error {
	if b.TargetSize != 0 && (b.TargetSize < 64<<10 || b.TargetSize > 1<<30) {
		return fmt.Errorf("%w: %s.target_size: %v is not between 64KiB and 1GiB", ErrConfig, p, b.TargetSize)
	}
	if b.FrameSize != 0 && (b.FrameSize < 4<<10 || b.FrameSize > 16<<20) {
		return fmt.Errorf("%w: %s.frame_size: %v is not between 4KiB and 16MiB", ErrConfig, p, b.FrameSize)
	}
	if b.MaxLinger < 0 {
		return fmt.Errorf("%w: %s.max_linger: negative", ErrConfig, p)
	}
	if b.Compression != "" {
		if _, err := block.ParseCodec(b.Compression); err != nil {
			return fmt.Errorf("%w: %s.compression: %q is not none, s2 or zstd", ErrConfig, p, b.Compression)
		}
	}
	return nil
}

func (t TierConfig) policy() TierPolicy {
	return TierPolicy{MaxAge: t.MaxAge, MaxBytes: t.MaxBytes, MaxBlocks: t.MaxBlocks}
}

func (t TierPolicy) validate(p string) error {
	switch {
	case t.MaxAge < 0:
		return fmt.Errorf("%w: %s.max_age: negative", ErrConfig, p)
	case t.MaxBytes < 0:
		return fmt.Errorf("%w: %s.max_bytes: negative", ErrConfig, p)
	case t.MaxBlocks < 0:
		return fmt.Errorf("%w: %s.max_blocks: negative", ErrConfig, p)
	}
	return nil
}

func (s StreamSpec) validate(p string) error {
	if s.Name == "" {
		return fmt.Errorf("%w: %s.name: empty", ErrConfig, p)
	}
	if _, err := path.Match(s.Name, ""); err != nil {
		return fmt.Errorf("%w: %s.name: bad pattern %q", ErrConfig, p, s.Name)
	}
	if !strings.ContainsAny(s.Name, "*?[") {
		if err := tier.ValidateStream(s.Name); err != nil {
			return fmt.Errorf("%w: %s.name: %v", ErrConfig, p, err)
		}
	}
	switch s.Kind {
	case "", "plain", "kv", "obj":
	default:
		return fmt.Errorf("%w: %s.kind: %q is not plain, kv or obj", ErrConfig, p, s.Kind)
	}
	switch s.Mirror {
	case "", "auto", "always", "never":
	default:
		return fmt.Errorf("%w: %s.mirror: %q is not auto, always or never", ErrConfig, p, s.Mirror)
	}
	if s.Consumer != "" && strings.ContainsAny(s.Consumer, " .*>/\\") {
		return fmt.Errorf("%w: %s.consumer: %q is not a consumer name", ErrConfig, p, s.Consumer)
	}
	if s.Block != nil {
		if err := s.Block.validate(p + ".block"); err != nil {
			return err
		}
	}
	if s.Tiers != nil {
		for name, t := range map[string]*TierPolicy{"memory": s.Tiers.Memory, "file": s.Tiers.File, "blob": s.Tiers.Blob} {
			if t != nil {
				if err := t.validate(p + ".tiers." + name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// LoadConfig reads a YAML file, fills defaults and validates it. Unknown
// fields and invalid values are errors naming the field's path and line.
func LoadConfig(file string) (Config, error) {
	c, err := ReadConfig(file)
	if err != nil {
		return Config{}, err
	}
	c.Complete()
	return c, c.Validate()
}

// ReadConfig reads a YAML file as it is, without defaults (so that flags can
// be applied before Complete). Unknown fields and values of the wrong form
// are errors naming the field's path and line.
func ReadConfig(file string) (Config, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseConfig(raw)
}

// ParseConfig is ReadConfig on bytes.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if err := decodeYAML(raw, &c); err != nil {
		return Config{}, err
	}
	return c, nil
}
