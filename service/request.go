package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-tiered/nts/tier"
)

// Limits of one request. A request asking for more is answered 413.
const (
	// defaultRangeMsgs is the number of messages a range batch sends when
	// the request sets no max_msgs.
	defaultRangeMsgs = 1000
	// maxRangeMsgs bounds max_msgs.
	maxRangeMsgs = 100_000
	// maxRangeBytes bounds max_bytes, the payload and header bytes of one
	// batch; without max_bytes a batch sends up to this.
	maxRangeBytes = 64 << 20
	// maxLastBlocks bounds the blocks msg.last reads, newest first, looking
	// for a message on the subject.
	maxLastBlocks = 64
	// defaultBlocksLimit and maxBlocksLimit page the blocks endpoint.
	defaultBlocksLimit = 100
	maxBlocksLimit     = 1000
	// maxBodySize bounds a request body; bodies are small JSON objects.
	maxBodySize = 4 << 10
)

// subjectArgs returns the tokens of subject after "<prefix>.<verb>.", which
// must be exactly n non-empty ones.
func subjectArgs(prefix, verb, subject string, n int) ([]string, error) {
	head := prefix + "." + verb + "."
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return nil, badRequest("subject %q is not under %q", subject, head)
	}
	toks := strings.Split(rest, ".")
	if len(toks) != n {
		return nil, badRequest("subject %q: want %d token(s) after %q, got %d", subject, n, head, len(toks))
	}
	for _, t := range toks {
		if t == "" {
			return nil, badRequest("subject %q has an empty token", subject)
		}
	}
	return toks, nil
}

// parseStream checks a stream name taken from a subject.
func parseStream(name string) (string, error) {
	if err := tier.ValidateStream(name); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return name, nil
}

// parseSeq parses a stream sequence: decimal digits, 1 or more.
func parseSeq(s string) (uint64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, badRequest("sequence %q is not a number", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("sequence %q is not a number below 2^64", s)
	}
	if n == 0 {
		return 0, badRequest("sequence 0: sequences start at 1")
	}
	return n, nil
}

// parseStreamSeq parses "<prefix>.<verb>.<stream>.<seq>".
func parseStreamSeq(prefix, verb, subject string) (string, uint64, error) {
	toks, err := subjectArgs(prefix, verb, subject, 2)
	if err != nil {
		return "", 0, err
	}
	stream, err := parseStream(toks[0])
	if err != nil {
		return "", 0, err
	}
	seq, err := parseSeq(toks[1])
	return stream, seq, err
}

// parseStreamOnly parses "<prefix>.<verb>.<stream>".
func parseStreamOnly(prefix, verb, subject string) (string, error) {
	toks, err := subjectArgs(prefix, verb, subject, 1)
	if err != nil {
		return "", err
	}
	return parseStream(toks[0])
}

// decodeBody decodes a JSON object body into v: unknown fields, trailing
// data and bodies over maxBodySize are errors. An empty body leaves v as it
// is.
func decodeBody(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if len(data) > maxBodySize {
		return fmt.Errorf("%w: body of %d bytes, over %d", ErrTooLarge, len(data), maxBodySize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("body: data after the JSON object")
	}
	return nil
}

// validSubjectFilter checks a subject filter: dot-separated non-empty
// tokens of printable characters without whitespace; "*" a whole token and
// ">" only the last one.
func validSubjectFilter(f string) error {
	if f == "" {
		return badRequest("empty subject filter")
	}
	if !utf8.ValidString(f) {
		return badRequest("subject filter %q is not valid UTF-8", f)
	}
	toks := strings.Split(f, ".")
	for i, t := range toks {
		if t == "" {
			return badRequest("subject filter %q has an empty token", f)
		}
		if strings.IndexFunc(t, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsGraphic(r) }) >= 0 {
			return badRequest("subject filter %q has whitespace or a control character", f)
		}
		if (strings.ContainsAny(t, "*>") && len(t) > 1) || (t == ">" && i != len(toks)-1) {
			return badRequest("subject filter %q: wildcards are whole tokens, '>' the last", f)
		}
	}
	return nil
}

// subjectMatches reports whether subject matches filter (a valid filter,
// with NATS wildcards).
func subjectMatches(filter, subject string) bool {
	for {
		ft, frest, fmore := strings.Cut(filter, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case ft == ">":
			return st != ""
		case ft != "*" && ft != st, st == "":
			return false
		case !fmore || !smore:
			return fmore == smore
		}
		filter, subject = frest, srest
	}
}

// lastRequest is the body of msg.last.
type lastRequest struct {
	// Subject filters the messages (NATS wildcards); empty matches all.
	Subject string `json:"subject"`
}

func parseLast(data []byte) (lastRequest, error) {
	var r lastRequest
	if err := decodeBody(data, &r); err != nil {
		return r, err
	}
	if r.Subject == "" {
		r.Subject = ">"
	}
	return r, validSubjectFilter(r.Subject)
}

// RangeRequest is the body of msg.range. Start at start_seq or start_time
// (neither: the first archived message), end at end_seq and end_time when
// set (inclusive), send messages on subject (NATS wildcards; empty: all), up
// to max_msgs messages and max_bytes bytes of payload and headers in one
// batch (at least one message is sent when any is due).
type RangeRequest struct {
	StartSeq  uint64     `json:"start_seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	EndSeq    uint64     `json:"end_seq,omitempty"`
	EndTime   *time.Time `json:"end_time,omitempty"`
	Subject   string     `json:"subject,omitempty"`
	MaxMsgs   int        `json:"max_msgs,omitempty"`
	MaxBytes  int64      `json:"max_bytes,omitempty"`
}

// parseRange decodes and checks a msg.range body, filling defaults.
func parseRange(data []byte) (RangeRequest, error) {
	var r RangeRequest
	if err := decodeBody(data, &r); err != nil {
		return r, err
	}
	switch {
	case r.StartSeq != 0 && r.StartTime != nil:
		return r, badRequest("set start_seq or start_time, not both")
	case r.EndSeq != 0 && r.EndSeq < r.StartSeq:
		return r, badRequest("end_seq %d is before start_seq %d", r.EndSeq, r.StartSeq)
	case r.StartTime != nil && r.EndTime != nil && r.EndTime.Before(*r.StartTime):
		return r, badRequest("end_time is before start_time")
	case r.MaxMsgs < 0:
		return r, badRequest("max_msgs %d is negative", r.MaxMsgs)
	case r.MaxBytes < 0:
		return r, badRequest("max_bytes %d is negative", r.MaxBytes)
	case r.MaxMsgs > maxRangeMsgs:
		return r, fmt.Errorf("%w: max_msgs %d is over %d", ErrTooLarge, r.MaxMsgs, maxRangeMsgs)
	case r.MaxBytes > maxRangeBytes:
		return r, fmt.Errorf("%w: max_bytes %d is over %d", ErrTooLarge, r.MaxBytes, maxRangeBytes)
	}
	if r.Subject == "" {
		r.Subject = ">"
	}
	if err := validSubjectFilter(r.Subject); err != nil {
		return r, err
	}
	if r.StartSeq == 0 {
		r.StartSeq = 1
	}
	if r.MaxMsgs == 0 {
		r.MaxMsgs = defaultRangeMsgs
	}
	if r.MaxBytes == 0 {
		r.MaxBytes = maxRangeBytes
	}
	return r, nil
}

// blocksRequest is the body of the blocks endpoint.
type blocksRequest struct {
	FromSeq uint64 `json:"from_seq"`
	Limit   int    `json:"limit"`
}

func parseBlocks(data []byte) (blocksRequest, error) {
	var r blocksRequest
	if err := decodeBody(data, &r); err != nil {
		return r, err
	}
	switch {
	case r.Limit < 0:
		return r, badRequest("limit %d is negative", r.Limit)
	case r.Limit > maxBlocksLimit:
		return r, fmt.Errorf("%w: limit %d is over %d", ErrTooLarge, r.Limit, maxBlocksLimit)
	case r.Limit == 0:
		r.Limit = defaultBlocksLimit
	}
	return r, nil
}
