package index

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Key prefixes in the index bucket and the lock bucket. They are part of the
// durable layout.
const (
	blkPrefix  = "blk."
	headPrefix = "head."
	lockPrefix = "lock."
)

// encodedMark starts an encoded stream token. A plain token never starts with
// it, so the two forms cannot be confused.
const encodedMark = '='

// maxStreamName is JetStream's limit on a stream name's length.
const maxStreamName = 255

// validateStream reports whether name is a stream name JetStream accepts:
// not empty, at most 255 bytes, printable, with no whitespace and none of
// '.', '*', '>', '/', '\\'.
func validateStream(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty stream name", ErrInvalid)
	}
	if len(name) > maxStreamName {
		return fmt.Errorf("%w: stream name longer than %d bytes", ErrInvalid, maxStreamName)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c <= ' ' || c == 0x7f:
			return fmt.Errorf("%w: stream name %q has whitespace or a control character", ErrInvalid, name)
		case c == '.' || c == '*' || c == '>' || c == '/' || c == '\\':
			return fmt.Errorf("%w: stream name %q has %q", ErrInvalid, name, c)
		}
	}
	return nil
}

// plainToken reports whether s may stand for itself as a key token: made only
// of [A-Za-z0-9_-].
func plainToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// StreamToken returns the key token standing for stream in index and lock
// keys. A name made only of [A-Za-z0-9_-] is its own token; any other name
// becomes "=" followed by the name in unpadded base64url, which uses only
// characters KV keys allow. The token form is part of the durable layout.
func StreamToken(stream string) string {
	if plainToken(stream) {
		return stream
	}
	return string(encodedMark) + base64.RawURLEncoding.EncodeToString([]byte(stream))
}

// ParseStreamToken returns the stream name a token made by StreamToken stands
// for. It returns an error wrapping ErrInvalid for anything else.
func ParseStreamToken(tok string) (string, error) {
	if plainToken(tok) {
		if err := validateStream(tok); err != nil {
			return "", err
		}
		return tok, nil
	}
	if len(tok) < 2 || tok[0] != encodedMark {
		return "", fmt.Errorf("%w: %q is not a stream token", ErrInvalid, tok)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok[1:])
	if err != nil {
		return "", fmt.Errorf("%w: stream token %q: %v", ErrInvalid, tok, err)
	}
	name := string(b)
	if err := validateStream(name); err != nil {
		return "", err
	}
	if plainToken(name) {
		// StreamToken never encodes a plain name; accepting it would give
		// one stream two keys.
		return "", fmt.Errorf("%w: stream token %q encodes a plain name", ErrInvalid, tok)
	}
	return name, nil
}

// blockKey is "blk.<stream token>.<first seq>".
func blockKey(stream string, first uint64) string {
	return blkPrefix + StreamToken(stream) + "." + strconv.FormatUint(first, 10)
}

// headKey is "head.<stream token>".
func headKey(stream string) string { return headPrefix + StreamToken(stream) }

// lockKey is "lock.<stream token>".
func lockKey(stream string) string { return lockPrefix + StreamToken(stream) }

// parseBlockKey splits a key made by blockKey.
func parseBlockKey(key string) (stream string, first uint64, err error) {
	rest, ok := strings.CutPrefix(key, blkPrefix)
	tok, num, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return "", 0, fmt.Errorf("%w: %q is not a block key", ErrInvalid, key)
	}
	if stream, err = ParseStreamToken(tok); err != nil {
		return "", 0, err
	}
	first, err = strconv.ParseUint(num, 10, 64)
	if err != nil || first == 0 || strconv.FormatUint(first, 10) != num {
		return "", 0, fmt.Errorf("%w: %q is not a block key", ErrInvalid, key)
	}
	return stream, first, nil
}

// parseHeadKey returns the stream of a key made by headKey.
func parseHeadKey(key string) (string, error) {
	tok, ok := strings.CutPrefix(key, headPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %q is not a head key", ErrInvalid, key)
	}
	return ParseStreamToken(tok)
}
