package client

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Sentinels of the package. Where nts and JetStream mean the same, the
// client returns JetStream's own (jetstream.ErrMsgNotFound,
// jetstream.ErrKeyNotFound, jetstream.ErrObjectNotFound,
// jetstream.ErrDigestMismatch, ...).
var (
	// ErrInvalidReply is wrapped by the error for a reply from nts that does
	// not follow the wire protocol (a missing or malformed header, a message
	// other than the one asked for, an object longer than its info says).
	// Nothing of such a reply is returned.
	ErrInvalidReply = errors.New("client: invalid reply from nts")
	// ErrInvalidArgument is wrapped by the error for an argument refused
	// before any request: an invalid option, range or subject filter.
	ErrInvalidArgument = errors.New("client: invalid argument")
)

// Error is an error nts answered: its micro error code (HTTP-like: 400 bad
// request, 404 not found, 408 timed out, 413 over a limit, 503 unavailable)
// and description. A 404 unwraps to the JetStream sentinels that mean the
// same for the call (jetstream.ErrMsgNotFound for GetMsg, ...), so that
// errors.Is holds for them.
type Error struct {
	// Code is the micro error code.
	Code int
	// Description is nts's description of the error.
	Description string
	// Subject is the subject of the request nts answered.
	Subject string

	sentinels []error
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("nts %s: %d %s", e.Subject, e.Code, e.Description)
}

// Unwrap returns the JetStream sentinels the error stands for.
func (e *Error) Unwrap() []error { return e.sentinels }

// replyError returns the error a reply of nts to subject carries: an *Error
// for a micro error reply, nats.ErrNoResponders for the server's "no
// responders" status, nil otherwise.
func replyError(subject string, m *nats.Msg) error {
	code := m.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		if len(m.Data) == 0 && m.Header.Get(HeaderStatus) == "503" {
			return fmt.Errorf("nts %s: %w", subject, nats.ErrNoResponders)
		}
		return nil
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 999 {
		return fmt.Errorf("%w: %s: error code %q", ErrInvalidReply, subject, code)
	}
	return &Error{Code: n, Description: m.Header.Get(micro.ErrorHeader), Subject: subject}
}

// notFound returns err, an error of nts, standing for sentinels when it is
// a 404.
func notFound(err error, sentinels ...error) error {
	var e *Error
	if !errors.As(err, &e) || e.Code != 404 {
		return err
	}
	out := *e
	out.sentinels = append(append([]error(nil), e.sentinels...), sentinels...)
	return &out
}

// isNotFound reports whether err is nts's 404.
func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == 404
}
