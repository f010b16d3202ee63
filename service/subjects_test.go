package service

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-tiered/nts/block"
)

func TestParseKVSubject(t *testing.T) {
	for _, tc := range []struct {
		verb, subject string
		withKey       bool
		bucket, key   string
		bad           bool
	}{
		{"get", "nts.kv.B.get.a", true, "B", "a", false},
		{"get", "nts.kv.my_bucket-1.get.a.b/c=d_e-f", true, "my_bucket-1", "a.b/c=d_e-f", false},
		{"history", "nts.kv.B.history.x.y", true, "B", "x.y", false},
		{"keys", "nts.kv.B.keys", false, "B", "", false},
		{"keys", "nts.kv.B.keys.x", false, "", "", true},
		{"get", "nts.kv.B.get", true, "", "", true},
		{"get", "nts.kv.B.get.", true, "", "", true},
		{"get", "nts.kv.B.get.a..b", true, "", "", true},
		{"get", "nts.kv.B.get.a.", true, "", "", true},
		{"get", "nts.kv.B.get.*", true, "", "", true},
		{"get", "nts.kv.B.get.>", true, "", "", true},
		{"get", "nts.kv.B.get.ü", true, "", "", true},
		{"get", "nts.kv.B~2.get.a", true, "", "", true},
		{"get", "nts.kv..get.a", true, "", "", true},
		{"get", "nts.kv.B.history.a", true, "", "", true},
		{"get", "other.kv.B.get.a", true, "", "", true},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			bucket, key, err := parseKVSubject("nts", tc.verb, tc.subject, tc.withKey)
			if tc.bad {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("got %q %q %v, want ErrBadRequest", bucket, key, err)
				}
				return
			}
			if err != nil || bucket != tc.bucket || key != tc.key {
				t.Fatalf("got %q %q %v, want %q %q", bucket, key, err, tc.bucket, tc.key)
			}
		})
	}
}

func TestParseObjRequest(t *testing.T) {
	for _, tc := range []struct {
		body string
		err  error
	}{
		{`{"name": "a b/c.d ☃"}`, nil},
		{`{"name": "x", "nuid": "ABC", "start_chunk": 3, "max_bytes": 1024}`, nil},
		{``, ErrBadRequest},
		{`{"name": ""}`, ErrBadRequest},
		{`{"name": "x", "nuid": "a.b"}`, ErrBadRequest},
		{`{"name": "x", "start_chunk": -1}`, ErrBadRequest},
		{`{"name": "x", "max_bytes": -1}`, ErrBadRequest},
		{`{"name": "x", "max_bytes": 67108865}`, ErrTooLarge},
		{`{"name": "x", "other": 1}`, ErrBadRequest},
	} {
		r, err := parseObjRequest([]byte(tc.body))
		if !errors.Is(err, tc.err) || (err == nil && r.MaxBytes <= 0) {
			t.Fatalf("%s: %+v, %v; want %v", tc.body, r, err, tc.err)
		}
	}
}

// TestLiteralPrefix checks that every key a filter matches starts with its
// literal prefix, the start of kv.keys's scan.
func TestLiteralPrefix(t *testing.T) {
	keys := []string{"a", "a.b", "a.b.c", "ab", "ab.c", "b.a", "a.bc", "x.y.z"}
	for _, tc := range []struct{ filter, want string }{
		{">", ""}, {"*", ""}, {"a.>", "a."}, {"a.*", "a."}, {"a.*.c", "a."}, {"*.b", ""}, {"a.b", "a.b"}, {"ab.c", "ab.c"},
	} {
		if got := literalPrefix(tc.filter); got != tc.want {
			t.Fatalf("literalPrefix(%q) = %q, want %q", tc.filter, got, tc.want)
		}
		for _, k := range keys {
			if subjectMatches(tc.filter, k) && !strings.HasPrefix(k, tc.want) {
				t.Fatalf("%q matches %q but does not start with %q", k, tc.filter, tc.want)
			}
		}
	}
}

func TestMergeKeyed(t *testing.T) {
	k := func(key string, seq uint64) keyed { return keyed{key, block.Entry{Seq: seq}} }
	x := []keyed{k("a", 1), k("c", 5), k("e", 2)}
	y := []keyed{k("b", 3), k("c", 4), k("d", 9), k("e", 7)}
	for n, want := range map[int]string{
		0: "[]",
		2: "[a:1 b:3]",
		4: "[a:1 b:3 c:5 d:9]",
		9: "[a:1 b:3 c:5 d:9 e:7]",
	} {
		got := mergeKeyed(nil, x, y, n)
		var parts []string
		for _, g := range got {
			parts = append(parts, fmt.Sprintf("%s:%d", g.key, g.entry.Seq))
		}
		if s := "[" + strings.Join(parts, " ") + "]"; s != want {
			t.Fatalf("merge of %d: %s, want %s", n, s, want)
		}
	}
}

// FuzzKVRequest feeds arbitrary subjects and bodies to the KV and object
// request parsers: nothing may panic, and what they accept must be valid.
func FuzzKVRequest(f *testing.F) {
	f.Add("nts.kv.B.get.a.b", []byte(`{"revision": 3}`))
	f.Add("nts.kv.B.keys", []byte(`{"filter": "a.*", "after": "a.b", "max_keys": 5}`))
	f.Add("nts.kv.B.history.k", []byte(`{"start_revision": 9}`))
	f.Add("nts.obj.B.get", []byte(`{"name": "x y", "nuid": "N", "start_chunk": 1}`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		for _, verb := range []string{"get", "history", "keys"} {
			bucket, key, err := parseKVSubject("nts", verb, subject, verb != "keys")
			if err == nil && (!validBucketRe.MatchString(bucket) || (verb != "keys" && !validKVKey(key))) {
				t.Fatalf("%q accepted as bucket %q key %q", subject, bucket, key)
			}
		}
		if _, err := parseObjSubject("nts", "get", subject); err != nil && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("parseObjSubject: %v", err)
		}
		if r, err := parseObjRequest(body); err == nil && (r.Name == "" || r.MaxBytes <= 0 || r.StartChunk < 0) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
