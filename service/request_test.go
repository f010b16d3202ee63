package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-tiered/nts/index"
)

func TestParseStreamSeq(t *testing.T) {
	for _, tc := range []struct {
		subject string
		stream  string
		seq     uint64
		bad     bool
	}{
		{"nts.get.ORDERS.7", "ORDERS", 7, false},
		{"nts.get.A~2.18446744073709551615", "A~2", 1<<64 - 1, false},
		{"nts.get.ORDERS.0", "", 0, true},
		{"nts.get.ORDERS.x", "", 0, true},
		{"nts.get.ORDERS.+1", "", 0, true},
		{"nts.get.ORDERS.18446744073709551616", "", 0, true},
		{"nts.get.ORDERS.1.2", "", 0, true},
		{"nts.get.ORDERS", "", 0, true},
		{"nts.get..1", "", 0, true},
		{"nts.get.OR*DERS.1", "", 0, true},
		{"nts.last.ORDERS.1", "", 0, true},
		{"other.get.ORDERS.1", "", 0, true},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			stream, seq, err := parseStreamSeq("nts", "get", tc.subject)
			if tc.bad {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("got %q %d %v, want ErrBadRequest", stream, seq, err)
				}
				return
			}
			if err != nil || stream != tc.stream || seq != tc.seq {
				t.Fatalf("got %q %d %v, want %q %d", stream, seq, err, tc.stream, tc.seq)
			}
		})
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{">", "a", true},
		{">", "a.b.c", true},
		{"a.>", "a", false},
		{"a.>", "a.b.c", true},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"*.b", "a.b", true},
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a", "a.b", false},
		{"a.b", "a", false},
	} {
		if got := subjectMatches(tc.filter, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", tc.filter, tc.subject, got, tc.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		body string
		code string // "" when valid
	}{
		{``, ""},
		{`{"start_seq": 5, "end_seq": 9, "subject": "a.*", "max_msgs": 10, "max_bytes": 100}`, ""},
		{`{"start_time": "2024-01-02T03:04:05.123456789Z"}`, ""},
		{`{"start_seq": 5, "start_time": "2024-01-02T03:04:05Z"}`, "400"},
		{`{"start_seq": 9, "end_seq": 5}`, "400"},
		{`{"start_seq": -1}`, "400"},
		{`{"start_seq": 18446744073709551616}`, "400"},
		{`{"max_msgs": 1e30}`, "400"},
		{`{"max_msgs": -1}`, "400"},
		{`{"max_msgs": 100001}`, "413"},
		{`{"max_bytes": 1073741824}`, "413"},
		{`{"subject": "a.>.b"}`, "400"},
		{`{"subject": "a b"}`, "400"},
		{`{"subject": "a..b"}`, "400"},
		{`{"start_time": "yesterday"}`, "400"},
		{`{"bogus": 1}`, "400"},
		{`{} {}`, "400"},
		{`[1]`, "400"},
		{`{`, "400"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			r, err := parseRange([]byte(tc.body))
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.StartSeq == 0 || r.MaxMsgs == 0 || r.MaxBytes == 0 || r.Subject == "" {
					t.Fatalf("defaults not filled: %+v", r)
				}
				return
			}
			if code, _ := errorCode(err); err == nil || code != tc.code {
				t.Fatalf("got %+v, %v (code %s), want code %s", r, err, code, tc.code)
			}
		})
	}
}

// FuzzRequest feeds arbitrary subjects and bodies to every parser: none may
// panic, and each either accepts its input or answers 400 or 413.
func FuzzRequest(f *testing.F) {
	f.Add("nts.get.ORDERS.1", `{"start_seq":1,"subject":"a.*"}`)
	f.Add("nts.get.X.0", `{"from_seq":3,"limit":2}`)
	f.Add("nts.range.X", `{"start_time":"2024-01-02T03:04:05Z","end_time":"2024-01-02T03:04:04Z"}`)
	f.Add("nts.get.\xff.1", `{"subject":">"}`)
	f.Fuzz(func(t *testing.T, subject, body string) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			if code, _ := errorCode(err); code != "400" && code != "413" {
				t.Fatalf("%s: %v mapped to %s", what, err, code)
			}
		}
		_, _, err := parseStreamSeq("nts", "get", subject)
		check("get", err)
		_, err = parseStreamOnly("nts", "range", subject)
		check("range subject", err)
		r, err := parseRange([]byte(body))
		check("range", err)
		if err == nil && (r.StartSeq == 0 || r.MaxMsgs <= 0 || r.MaxMsgs > maxRangeMsgs || validSubjectFilter(r.Subject) != nil) {
			t.Fatalf("accepted %q as %+v", body, r)
		}
		l, err := parseLast([]byte(body))
		check("last", err)
		if err == nil {
			subjectMatches(l.Subject, subject)
		}
		b, err := parseBlocks([]byte(body))
		check("blocks", err)
		if err == nil && (b.Limit <= 0 || b.Limit > maxBlocksLimit) {
			t.Fatalf("accepted limit %d", b.Limit)
		}
		if validSubjectFilter(subject) == nil && !subjectMatches(subject, subject) && !containsWildcard(subject) {
			t.Fatalf("literal subject %q does not match itself", subject)
		}
	})
}

func containsWildcard(s string) bool {
	for _, r := range s {
		if r == '*' || r == '>' {
			return true
		}
	}
	return false
}

// TestPageBlocks checks that a page of the blocks endpoint holds no filter,
// stops at the limit or before maxBytes (but holds at least one block) and
// says where the next page starts.
func TestPageBlocks(t *testing.T) {
	var list []index.BlockMeta
	for i := range 10 {
		first := uint64(i*100 + 1)
		list = append(list, index.BlockMeta{Key: fmt.Sprintf("blk.S.%d", first), FirstSeq: first, LastSeq: first + 99,
			Filter: bytes.Repeat([]byte{0xa5}, 4096)})
	}
	one, err := json.Marshal(replyMeta(list[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		limit    int
		maxBytes int64
		want     int
		more     bool
	}{
		{limit: 5, maxBytes: 1 << 20, want: 5, more: true},
		{limit: 10, maxBytes: 1 << 20, want: 10},
		{limit: 10, maxBytes: int64(3*len(one) + 100), want: 3, more: true},
		{limit: 10, maxBytes: 10, want: 1, more: true},
	} {
		in := list[:min(tc.limit+1, len(list))]
		page, err := pageBlocks(in, tc.limit, tc.maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Blocks) != tc.want || page.More != tc.more {
			t.Errorf("limit %d, %d bytes: %d blocks, more %v; want %d, %v", tc.limit, tc.maxBytes, len(page.Blocks), page.More, tc.want, tc.more)
			continue
		}
		if tc.more && page.NextSeq != list[tc.want].FirstSeq {
			t.Errorf("limit %d, %d bytes: next_seq %d, want %d", tc.limit, tc.maxBytes, page.NextSeq, list[tc.want].FirstSeq)
		}
		b, err := json.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want > 1 && int64(len(b)) > tc.maxBytes {
			t.Errorf("limit %d: page of %d bytes over %d", tc.limit, len(b), tc.maxBytes)
		}
		for _, m := range page.Blocks {
			if m.Filter != nil {
				t.Errorf("block %s has its filter in the reply", m.Key)
			}
		}
	}
	if list[0].Filter == nil {
		t.Error("pageBlocks cleared the filter of the view's entry")
	}
}
