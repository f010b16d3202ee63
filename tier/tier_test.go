package tier_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/nats-tiered/nts/tier"
)

func TestValidateStream(t *testing.T) {
	cases := []struct {
		name   string
		stream string
		ok     bool
	}{
		{"plain", "ORDERS", true},
		{"one byte", "a", true},
		{"kv stream", "KV_config", true},
		{"object stream", "OBJ_files", true},
		{"dash and underscore", "orders-2025_v1", true},
		{"punctuation", "a:b=c#d@e!f", true},
		{"unicode", "日本語", true},
		{"mixed unicode", "Ünïcödé-流れ", true},
		{"emoji", "logs-📦", true},
		{"255 bytes", strings.Repeat("a", 255), true},
		{"255 bytes multibyte", "a" + strings.Repeat("é", 127), true},

		{"empty", "", false},
		{"256 bytes", strings.Repeat("a", 256), false},
		{"256 bytes multibyte", strings.Repeat("a", 254) + "é", false},
		{"dot", ".", false},
		{"dot dot", "..", false},
		{"dot inside", "a.b", false},
		{"no-break space", "a\u00a0b", false},
		{"next line", "a\u0085b", false},
		{"line separator", "a\u2028b", false},
		{"zero-width space", "a\u200bb", false},
		{"star", "a*", false},
		{"star alone", "*", false},
		{"greater than", ">", false},
		{"greater than inside", "a>b", false},
		{"slash", "a/b", false},
		{"leading slash", "/a", false},
		{"backslash", `a\b`, false},
		{"space", "a b", false},
		{"leading space", " a", false},
		{"trailing space", "a ", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"carriage return", "a\rb", false},
		{"form feed", "a\fb", false},
		{"nul", "a\x00b", false},
		{"escape", "\x1b[31m", false},
		{"delete", "a\x7f", false},
		{"invalid utf-8", "a\xffb", false},
		{"truncated utf-8", "a\xc3", false},
		{"utf-16 surrogate", "a\xed\xa0\x80", false},
		{"overlong slash", "a\xc0\xafb", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := tier.ValidateStream(c.stream)
			if c.ok && err != nil {
				t.Fatalf("ValidateStream(%q) = %v, want nil", c.stream, err)
			}
			if !c.ok && !errors.Is(err, tier.ErrInvalidKey) {
				t.Fatalf("ValidateStream(%q) = %v, want an error wrapping ErrInvalidKey", c.stream, err)
			}
		})
	}
}

func TestKeyRoundTrip(t *testing.T) {
	cases := []struct {
		stream      string
		first, last uint64
		want        string
	}{
		{"ORDERS", 1, 1, "ORDERS/00000000000000000001-00000000000000000001.blk"},
		{"ORDERS", 1, 99, "ORDERS/00000000000000000001-00000000000000000099.blk"},
		{"KV_config", 123456789, 987654321, "KV_config/00000000000123456789-00000000000987654321.blk"},
		{"日本語", 42, 4242, "日本語/00000000000000000042-00000000000000004242.blk"},
		{"LOGS", 1, math.MaxUint64, "LOGS/00000000000000000001-18446744073709551615.blk"},
		{"LOGS", math.MaxUint64, math.MaxUint64, "LOGS/18446744073709551615-18446744073709551615.blk"},
		{strings.Repeat("s", 255), 7, 8, strings.Repeat("s", 255) + "/00000000000000000007-00000000000000000008.blk"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%.12s_%d-%d", c.stream, c.first, c.last), func(t *testing.T) {
			key, err := tier.Key(c.stream, c.first, c.last)
			if err != nil || key != c.want {
				t.Fatalf("Key(%q, %d, %d) = %q, %v; want %q", c.stream, c.first, c.last, key, err, c.want)
			}
			stream, first, last, err := tier.ParseKey(key)
			if err != nil || stream != c.stream || first != c.first || last != c.last {
				t.Fatalf("ParseKey(%q) = %q, %d, %d, %v; want %q, %d, %d", key, stream, first, last, err, c.stream, c.first, c.last)
			}
		})
	}
}

// TestKeyOrder checks that keys of one stream sort as their sequences do,
// which listing a stream's blocks in order relies on.
func TestKeyOrder(t *testing.T) {
	seqs := [][2]uint64{{1, 9}, {10, 99}, {100, 1000}, {1001, 1 << 40}, {1<<40 + 1, math.MaxUint64}}
	prev := ""
	for _, s := range seqs {
		key, err := tier.Key("LOGS", s[0], s[1])
		if err != nil {
			t.Fatal(err)
		}
		if key <= prev {
			t.Fatalf("key %q of %d-%d sorts before %q", key, s[0], s[1], prev)
		}
		prev = key
	}
}

func TestKeyErrors(t *testing.T) {
	cases := []struct {
		name        string
		stream      string
		first, last uint64
	}{
		{"first zero", "ORDERS", 0, 5},
		{"both zero", "ORDERS", 0, 0},
		{"last before first", "ORDERS", 10, 9},
		{"empty stream", "", 1, 2},
		{"stream with dot", "a.b", 1, 2},
		{"stream with slash", "a/b", 1, 2},
		{"stream too long", strings.Repeat("a", 256), 1, 2},
		{"stream invalid utf-8", "\xff", 1, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, err := tier.Key(c.stream, c.first, c.last)
			if !errors.Is(err, tier.ErrInvalidKey) || key != "" {
				t.Fatalf("Key(%q, %d, %d) = %q, %v; want an error wrapping ErrInvalidKey", c.stream, c.first, c.last, key, err)
			}
		})
	}
}

func TestParseKeyErrors(t *testing.T) {
	const (
		one  = "00000000000000000001"
		two  = "00000000000000000002"
		name = one + "-" + two + ".blk"
	)
	cases := []struct {
		name string
		key  string
	}{
		{"empty", ""},
		{"stream only", "ORDERS"},
		{"no file name", "ORDERS/"},
		{"no stream", "/" + name},
		{"file name only", name},
		{"invalid stream", "a.b/" + name},
		{"stream with space", "a b/" + name},
		{"stream too long", strings.Repeat("a", 256) + "/" + name},
		{"prefixed", "archive/ORDERS/" + name},
		{"trailing slash", "ORDERS/" + name + "/"},
		{"no suffix", "ORDERS/" + one + "-" + two + "xblk"},
		{"other suffix", "ORDERS/" + one + "-" + two + ".BLK"},
		{"suffix twice", "ORDERS/" + name + ".blk"},
		{"trailing newline", "ORDERS/" + name + "\n"},
		{"short first", "ORDERS/0000000000000000001-" + two + ".blk"},
		{"short first, padded to length", "ORDERS/0000000000000000001-" + two + "0.blk"},
		{"short last", "ORDERS/" + one + "-0000000000000000002.blk"},
		{"unpadded", "ORDERS/1-2.blk"},
		{"no dash", "ORDERS/" + one + "_" + two + ".blk"},
		{"plus sign", "ORDERS/+0000000000000000001-" + two + ".blk"},
		{"minus sign", "ORDERS/-0000000000000000001-" + two + ".blk"},
		{"underscore digit", "ORDERS/0000000000000000_001-" + two + ".blk"},
		{"space digit", "ORDERS/ 0000000000000000001-" + two + ".blk"},
		{"hex digit", "ORDERS/0000000000000000000a-" + two + ".blk"},
		{"unicode digit", "ORDERS/000000000000000000٣-" + two + ".blk"},
		{"first zero", "ORDERS/00000000000000000000-" + two + ".blk"},
		{"last before first", "ORDERS/" + two + "-" + one + ".blk"},
		{"first overflows", "ORDERS/18446744073709551616-18446744073709551616.blk"},
		{"last overflows", "ORDERS/" + one + "-99999999999999999999.blk"},
		{"invalid utf-8 stream", "\xff/" + name},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream, first, last, err := tier.ParseKey(c.key)
			if !errors.Is(err, tier.ErrInvalidKey) || stream != "" || first != 0 || last != 0 {
				t.Fatalf("ParseKey(%q) = %q, %d, %d, %v; want an error wrapping ErrInvalidKey", c.key, stream, first, last, err)
			}
		})
	}
}

// FuzzParseKey checks that ParseKey never panics, that whatever it accepts
// is a key Key makes from the parts, byte for byte, and that it rejects
// anything else with ErrInvalidKey.
func FuzzParseKey(f *testing.F) {
	for _, k := range []string{
		"ORDERS/00000000000000000001-00000000000000000099.blk",
		"日本語/00000000000000000042-00000000000000004242.blk",
		"LOGS/00000000000000000001-18446744073709551615.blk",
		"LOGS/00000000000000000002-00000000000000000001.blk",
		"LOGS/18446744073709551616-18446744073709551616.blk",
		"a.b/00000000000000000001-00000000000000000002.blk",
		"archive/ORDERS/00000000000000000001-00000000000000000002.blk",
		"ORDERS/+0000000000000000001-00000000000000000002.blk",
		"\xff/00000000000000000001-00000000000000000002.blk",
		"ORDERS/1-2.blk",
		"",
		"/",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		stream, first, last, err := tier.ParseKey(key)
		if err != nil {
			if !errors.Is(err, tier.ErrInvalidKey) {
				t.Fatalf("ParseKey(%q): %v does not wrap ErrInvalidKey", key, err)
			}
			return
		}
		if err := tier.ValidateStream(stream); err != nil {
			t.Fatalf("ParseKey(%q) accepted stream %q: %v", key, stream, err)
		}
		again, err := tier.Key(stream, first, last)
		if err != nil || again != key {
			t.Fatalf("ParseKey(%q) = %q, %d, %d; Key of those = %q, %v", key, stream, first, last, again, err)
		}
	})
}
