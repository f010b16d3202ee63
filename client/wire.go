// Package client is the Go side of nts's wire protocol: the subjects its
// micro service answers on and the headers of its replies. It imports only
// nats.go, so programs that read archived messages over NATS can use it
// without pulling in the server side.
package client

import (
	"strconv"

	"github.com/nats-io/nats.go"
)

// DefaultPrefix is the first token of every nts subject unless the service
// is configured with another.
const DefaultPrefix = "nts"

// Headers of a message reply. The first four are those of a JetStream
// direct-get reply; the original message's headers come with them.
const (
	// HeaderStream names the stream the message was archived from.
	HeaderStream = "Nats-Stream"
	// HeaderSequence is the message's stream sequence.
	HeaderSequence = "Nats-Sequence"
	// HeaderSubject is the subject the message was published to.
	HeaderSubject = "Nats-Subject"
	// HeaderTimeStamp is the message's JetStream timestamp, RFC 3339 with
	// nanoseconds, UTC.
	HeaderTimeStamp = "Nats-Time-Stamp"
	// HeaderTier names the tier that served a message ("memory", "file",
	// "blob").
	HeaderTier = "Nts-Tier"
	// HeaderLastSeq, on the end of a range batch, is the last sequence the
	// batch covered: the next batch starts after it.
	HeaderLastSeq = "Nts-Last-Seq"
	// HeaderNumPending, on the end of a range batch, counts the archived
	// messages of the range after HeaderLastSeq: 0 when the range is done,
	// otherwise an upper bound (it counts whole blocks and ignores the
	// subject filter).
	HeaderNumPending = "Nts-Num-Pending"
	// HeaderStatus and HeaderDescription mark the end of a range batch
	// ("204", "EOB"): nats.go reads a JetStream status line
	// "NATS/1.0 204 EOB" into these same two headers.
	HeaderStatus      = "Status"
	HeaderDescription = "Description"
)

// StatusEndOfBatch is HeaderStatus on the message that ends a range batch.
const StatusEndOfBatch = "204"

// GetSubject is the subject of the msg.get endpoint for one message.
func GetSubject(prefix, stream string, seq uint64) string {
	return prefix + ".get." + stream + "." + strconv.FormatUint(seq, 10)
}

// LastSubject is the subject of the msg.last endpoint of a stream.
func LastSubject(prefix, stream string) string { return prefix + ".last." + stream }

// RangeSubject is the subject of the msg.range endpoint of a stream.
func RangeSubject(prefix, stream string) string { return prefix + ".range." + stream }

// IsEndOfBatch reports whether m ends a range batch.
func IsEndOfBatch(m *nats.Msg) bool {
	return m.Header.Get(HeaderStatus) == StatusEndOfBatch && len(m.Data) == 0
}
