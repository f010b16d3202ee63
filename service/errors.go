package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// Errors of the endpoints. Each is answered with the micro error headers
// (Nats-Service-Error-Code, Nats-Service-Error) and the code errorCode gives
// it; the description is the error's text, which says what was wrong.
var (
	// ErrBadRequest: a malformed subject, body or name (400).
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: an unknown stream, or a sequence or block never archived
	// or expired (404).
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: a request over the service's limits, or a message that
	// does not fit the requester's max payload (413).
	ErrTooLarge = errors.New("request over limits")
	// ErrOverloaded: every worker of the replica is busy, or it is shutting
	// down (503). Another replica, or a retry, may serve the request.
	ErrOverloaded = errors.New("service unavailable")
)

// errorCode maps an endpoint's error to its micro error code and
// description. It is the one place where errors become codes.
func errorCode(err error) (code, description string) {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, tier.ErrInvalidKey), errors.Is(err, index.ErrInvalid):
		code = "400"
	case errors.Is(err, ErrNotFound), errors.Is(err, block.ErrNotFound):
		code = "404"
	case errors.Is(err, context.DeadlineExceeded):
		code = "408"
	case errors.Is(err, tier.ErrLastCopy): // a demote of a block's only copy
		code = "409"
	case errors.Is(err, ErrTooLarge):
		code = "413"
	case errors.Is(err, ErrOverloaded), errors.Is(err, tier.ErrUnavailable), errors.Is(err, context.Canceled):
		code = "503"
	default:
		code = "500"
	}
	description = err.Error()
	if description == "" {
		description = "error"
	}
	return code, description
}

// badRequest returns an error wrapping ErrBadRequest.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}
