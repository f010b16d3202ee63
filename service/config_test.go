package service

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"0", 0, false},
		{"4096", 4096, false},
		{"8MB", 8_000_000, false},
		{"8MiB", 8 << 20, false},
		{"8mib", 8 << 20, false},
		{"256 KiB", 256 << 10, false},
		{"1.5GiB", 3 << 29, false},
		{"2TB", 2e12, false},
		{"10B", 10, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1MiB", 0, true},
		{"1.5B", 0, true},
		{"8 parsecs", 0, true},
		{"inf", 0, true},
		{"NaN", 0, true},
		{"0x10", 0, true},
		{"1e30", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("ParseSize(%q) error = %v, want error %v", tc.in, err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.NATS.Embedded.Listen != "0.0.0.0:4222" || c.NATS.Embedded.StoreDir != filepath.Join("nts-data", "nats") {
		t.Fatalf("embedded defaults: %+v", c.NATS.Embedded)
	}
	if !c.Tiers.Memory.On() || !c.Tiers.File.On() || !c.Tiers.Blob.On() {
		t.Fatal("every tier should be on by default")
	}
	if !strings.HasPrefix(c.Tiers.Blob.URL, "dir:///") || !strings.HasSuffix(c.Tiers.Blob.URL, "/nts-data/blob") {
		t.Fatalf("blob default %q", c.Tiers.Blob.URL)
	}
	if c.Block.TargetSize != 8<<20 || c.Block.Compression != "s2" {
		t.Fatalf("block defaults: %+v", c.Block)
	}
}

const fullConfig = `
data_dir: /var/lib/nts
nats:
  url: nats://a:4222,nats://b:4222
  creds: /etc/nts/nts.creds
  tls: {ca: /etc/nts/ca.pem}
index:
  bucket: archive_index
  replicas: 3
  storage: memory
  lock_ttl: 15s
  max_bytes: 64MiB
service:
  prefix: archive.nts
  queue_group: archivers
  max_concurrent: 32
  request_timeout: 5s
block:
  target_size: 16MiB
  frame_size: 256KiB
  max_linger: 2s
  compression: zstd
tiers:
  policy_interval: 30s
  memory: {max_bytes: 1GiB, max_blocks: 100, max_age: 1h}
  file: {enabled: false}
  blob:
    url: s3://archive/nts?region=eu-west-1
    max_age: 8760h
streams:
  - name: ORDERS
    block: {compression: none}
    tiers:
      memory: {max_age: 10m}
  - name: KV_*
    kind: kv
  - name: JOBS
    mirror: always
    consumer: archiver
`

func TestParseFullConfig(t *testing.T) {
	c, err := ParseConfig([]byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.Complete()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Index.Replicas != 3 || c.Index.LockTTL != Duration(15*time.Second) || c.Index.Storage != "memory" || c.Index.MaxBytes != 64<<20 {
		t.Fatalf("index: %+v", c.Index)
	}
	if c.Block.TargetSize != 16<<20 || c.Block.FrameSize != 256<<10 || c.Block.MaxLinger != Duration(2*time.Second) {
		t.Fatalf("block: %+v", c.Block)
	}
	if c.Tiers.File.On() || !c.Tiers.Memory.On() || c.Tiers.Memory.MaxBytes != 1<<30 || c.Tiers.Memory.MaxBlocks != 100 {
		t.Fatalf("tiers: %+v", c.Tiers)
	}
	if c.Tiers.Blob.MaxAge != Duration(8760*time.Hour) {
		t.Fatalf("blob max_age %v", c.Tiers.Blob.MaxAge)
	}
	if len(c.Streams) != 3 || c.Streams[0].Block.Compression != "none" ||
		c.Streams[0].Tiers.Memory.MaxAge != Duration(10*time.Minute) || c.Streams[1].Kind != "kv" ||
		c.Streams[2].Consumer != "archiver" {
		t.Fatalf("streams: %+v", c.Streams)
	}
	if c.NATS.Embedded.StoreDir != "/var/lib/nts/nats" || c.Tiers.File.Dir != "/var/lib/nts/blocks" {
		t.Fatalf("defaults did not follow data_dir: %+v %q", c.NATS.Embedded, c.Tiers.File.Dir)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top", "colour: blue\n", "colour (line 1): unknown field"},
		{"unknown nested", "tiers:\n  memory:\n    max_byte: 1GiB\n", "tiers.memory.max_byte (line 3): unknown field"},
		{"bad size", "tiers:\n  memory:\n    max_bytes: lots\n", "tiers.memory.max_bytes (line 3)"},
		{"bad duration", "block:\n  max_linger: 5\n", "block.max_linger (line 2)"},
		{"bad int", "index:\n  replicas: three\n", "index.replicas (line 2)"},
		{"bad bool", "tiers:\n  file:\n    enabled: maybe\n", "tiers.file.enabled (line 3)"},
		{"list expected", "streams: ORDERS\n", "streams (line 1): expected a list"},
		{"stream field", "streams:\n  - name: A\n  - name: B\n    kynd: kv\n", "streams[1].kynd (line 4): unknown field"},
		{"set twice", "index:\n  bucket: a\n  bucket: b\n", "index.bucket (line 3): set twice"},
		{"compression", "block:\n  compression: lz4\n", "block.compression"},
		{"replicas range", "index:\n  replicas: 7\n", "index.replicas"},
		{"index max_bytes", "index:\n  max_bytes: -1MiB\n", "index.max_bytes"},
		{"kind", "streams:\n  - name: X\n    kind: table\n", "streams[0].kind"},
		{"stream name", "streams:\n  - name: a.b\n", "streams[0].name"},
		{"stream twice", "streams:\n  - name: A\n  - name: A\n", "streams[1].name"},
		{"stream block", "streams:\n  - name: A\n    block: {target_size: 1KiB}\n", "streams[0].block.target_size"},
		{"negative age", "streams:\n  - name: A\n    tiers: {blob: {max_age: -1h}}\n", "streams[0].tiers.blob.max_age"},
		{"blob url", "tiers:\n  blob:\n    url: ftp://x/y\n", "tiers.blob.url"},
		{"no tiers", "tiers: {memory: {enabled: false}, file: {enabled: false}, blob: {enabled: false}}\n", "tiers: no tier"},
		{"listen", "nats:\n  embedded: {listen: nowhere}\n", "nats.embedded.listen"},
		{"tls pair", "nats:\n  tls: {cert: c.pem}\n", "nats.tls"},
		{"syntax", "tiers: [\n", "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				c.Complete()
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("no error for %q", tc.yaml)
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nts.yaml")
	if err := os.WriteFile(file, []byte("data_dir: "+dir+"\nblock: {target_size: 1MiB}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Block.TargetSize != 1<<20 || c.Tiers.File.Dir != filepath.Join(dir, "blocks") {
		t.Fatalf("loaded %+v", c)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrConfig) {
		t.Fatalf("missing file: %v", err)
	}
	// An empty file is the default configuration.
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(empty); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(fullConfig))
	f.Add([]byte("tiers: {memory: {max_bytes: 1GiB}}"))
	f.Add([]byte("streams: [{name: A}, {name: B, tiers: {blob: {max_age: 1h}}}]"))
	f.Add([]byte("a: &x {b: *x}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(raw)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		c.Complete()
		_ = c.Validate()
	})
}

// TestFrameSizeByKind checks the frame size a stream's blocks get: by its
// kind when nothing sets one (16 KiB for KV buckets, 32 KiB otherwise),
// the configured default over that, a stream's own over both.
func TestFrameSizeByKind(t *testing.T) {
	frame := func(cfg Config, stream string) int {
		t.Helper()
		cfg.Complete()
		a := &archiver{cfg: cfg}
		p, ok := a.policyFor(stream)
		if !ok {
			t.Fatalf("%s is not archived", stream)
		}
		return p.block.FrameSize
	}
	var cfg Config
	for stream, want := range map[string]int{"ORDERS": 32 << 10, "KV_config": 16 << 10, "OBJ_files": 32 << 10} {
		if got := frame(cfg, stream); got != want {
			t.Errorf("%s: frame size %d, want %d", stream, got, want)
		}
	}
	cfg.Block.FrameSize = 64 << 10
	if got := frame(cfg, "KV_config"); got != 64<<10 {
		t.Errorf("configured 64KiB: KV frame size %d", got)
	}
	cfg.Streams = []StreamSpec{{Name: "KV_*", Block: &BlockConfig{FrameSize: 8 << 10}}, {Name: "*"}}
	if got, other := frame(cfg, "KV_config"), frame(cfg, "ORDERS"); got != 8<<10 || other != 64<<10 {
		t.Errorf("stream override: KV frame size %d, other %d", got, other)
	}
	cfg = Config{Streams: []StreamSpec{{Name: "CONF", Kind: "kv"}}}
	if got := frame(cfg, "CONF"); got != 16<<10 {
		t.Errorf("kind kv by configuration: frame size %d", got)
	}
}
