package index

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// kvKeyRe is what JetStream KV accepts as a key.
var kvKeyRe = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func TestStreamToken(t *testing.T) {
	tests := []struct {
		stream string
		plain  bool
	}{
		{"ORDERS", true},
		{"orders_2024-01", true},
		{"-", true},
		{"訂單", false},
		{"Ünïcödé", false},
		{"emoji🚀", false},
		{"a=b", false},
		{"=", false},
		{"=YWJj", false}, // looks like a token
		{"with:colon", false},
		{"q?#%&!~", false},
		{"KV_bucket", true},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("é", 127), false},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			tok := StreamToken(tt.stream)
			if (tok == tt.stream) != tt.plain {
				t.Errorf("StreamToken(%q) = %q; plain = %v, want %v", tt.stream, tok, tok == tt.stream, tt.plain)
			}
			for _, key := range []string{blockKey(tt.stream, 1), headKey(tt.stream), lockKey(tt.stream)} {
				if !kvKeyRe.MatchString(key) {
					t.Errorf("key %q is not a valid KV key", key)
				}
			}
			got, err := ParseStreamToken(tok)
			if err != nil || got != tt.stream {
				t.Errorf("ParseStreamToken(%q) = %q, %v; want %q", tok, got, err, tt.stream)
			}
			s, first, err := parseBlockKey(blockKey(tt.stream, 42))
			if err != nil || s != tt.stream || first != 42 {
				t.Errorf("parseBlockKey = %q, %d, %v", s, first, err)
			}
			if s, err := parseHeadKey(headKey(tt.stream)); err != nil || s != tt.stream {
				t.Errorf("parseHeadKey = %q, %v", s, err)
			}
		})
	}
}

func TestParseStreamTokenRejects(t *testing.T) {
	for _, tok := range []string{
		"",
		"=",
		"=!!",
		"=YWJj",                  // "abc": a plain name is never encoded
		"=YS5i",                  // "a.b"
		"=AA",                    // "\x00"
		"=YWJjZA=",               // padded
		"=YWJjZB",                // non-canonical trailing bits
		"a.b",                    // not a token
		"a b",                    // not a token
		strings.Repeat("x", 256), // too long
		"=" + strings.Repeat("w", 400),
	} {
		if s, err := ParseStreamToken(tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseStreamToken(%q) = %q, %v; want ErrInvalid", tok, s, err)
		}
	}
}

func TestParseKeysRejects(t *testing.T) {
	for _, key := range []string{
		"blk.S", "blk.S.", "blk.S.0", "blk.S.01", "blk.S.-1", "blk.S.1.2", "blk..1",
		"blk.S.18446744073709551616", "head.S.1", "blk.=YS5i.1", "S.1",
	} {
		if _, _, err := parseBlockKey(key); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseBlockKey(%q) = %v; want ErrInvalid", key, err)
		}
	}
	for _, key := range []string{"head.", "head.a.b", "blk.S", "head.=YS5i"} {
		if _, err := parseHeadKey(key); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseHeadKey(%q) = %v; want ErrInvalid", key, err)
		}
	}
}

func TestBlockMetaValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*BlockMeta)
		ok   bool
	}{
		{"valid", func(*BlockMeta) {}, true},
		{"single message", func(m *BlockMeta) { m.LastSeq, m.Count = m.FirstSeq, 1 }, true},
		{"gaps", func(m *BlockMeta) { m.Count = 2 }, true},
		{"no tiers", func(m *BlockMeta) { m.Tiers = nil }, true},
		{"bad stream", func(m *BlockMeta) { m.Stream = "a.b" }, false},
		{"empty stream", func(m *BlockMeta) { m.Stream = "" }, false},
		{"first 0", func(m *BlockMeta) { m.FirstSeq = 0 }, false},
		{"last before first", func(m *BlockMeta) { m.LastSeq = m.FirstSeq - 1 }, false},
		{"no messages", func(m *BlockMeta) { m.Count = 0 }, false},
		{"too many messages", func(m *BlockMeta) { m.Count = m.LastSeq - m.FirstSeq + 2 }, false},
		{"negative size", func(m *BlockMeta) { m.Size = -1 }, false},
		{"negative raw size", func(m *BlockMeta) { m.RawSize = -1 }, false},
		{"negative frames", func(m *BlockMeta) { m.Frames = -1 }, false},
		{"empty tier", func(m *BlockMeta) { m.Tiers = []string{"file", ""} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := meta("S", 10, 20)
			tt.edit(&m)
			err := m.Validate()
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate = %v; want ok %v", err, tt.ok)
			}
		})
	}
}

// TestSameBlockCoversEveryField changes each field of BlockMeta in turn:
// sameBlock must notice every change but one of Tiers, and Equal every one.
func TestSameBlockCoversEveryField(t *testing.T) {
	base := meta("S", 10, 20)
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			m := base
			m.Tiers = []string{"memory", "file", "blob"}
			v := reflect.ValueOf(&m).Elem().Field(i)
			switch v.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Uint64, reflect.Uint32:
				v.SetUint(v.Uint() + 1)
			case reflect.Int64, reflect.Int:
				v.SetInt(v.Int() + 1)
			case reflect.Slice:
				if f.Name == "Filter" {
					m.Filter = []byte{1, 7, 0xff}
				} else {
					m.Tiers = []string{"blob"}
				}
			default:
				t.Fatalf("field %s of kind %s not covered by this test", f.Name, v.Kind())
			}
			if got := sameBlock(&base, &m); got != (f.Name == "Tiers") {
				t.Errorf("sameBlock after changing %s = %v", f.Name, got)
			}
			if base.Equal(&m) {
				t.Errorf("Equal after changing %s", f.Name)
			}
		})
	}
}

// TestJSONFields pins the durable JSON names.
func TestJSONFields(t *testing.T) {
	want := map[string]bool{
		"stream": true, "first_seq": true, "last_seq": true, "first_time": true, "last_time": true,
		"count": true, "raw_size": true, "size": true, "frames": true, "codec": true,
		"checksum": true, "tiers": true, "key": true, "version": true, "created": true,
		"filter,omitempty": true,
	}
	typ := reflect.TypeOf(BlockMeta{})
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("json")
		if !want[tag] {
			t.Errorf("BlockMeta.%s has JSON name %q", typ.Field(i).Name, tag)
		}
		delete(want, tag)
	}
	for name := range want {
		t.Errorf("no BlockMeta field is named %q in JSON", name)
	}
}
