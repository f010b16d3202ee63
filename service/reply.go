package service

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/block"
)

// Headers of a message reply, as JetStream's direct get sets them, and nts's
// own.
const (
	hdrStream    = "Nats-Stream"
	hdrSequence  = "Nats-Sequence"
	hdrSubject   = "Nats-Subject"
	hdrTimeStamp = "Nats-Time-Stamp"
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

// msgReply builds the reply carrying archived message m of stream, served
// by tierName: the payload byte for byte, the original headers (every value
// of every key), then the direct-get headers and Nts-Tier, which replace
// any original header of the same name.
func msgReply(stream string, m block.Msg, tierName string) (*nats.Msg, error) {
	h := nats.Header{}
	if len(m.Header) > 0 {
		orig, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return nil, fmt.Errorf("stream %q seq %d: stored headers: %w", stream, m.Seq, err)
		}
		for k, vs := range orig {
			h[k] = append([]string(nil), vs...)
		}
	}
	h.Set(hdrStream, stream)
	h.Set(hdrSequence, strconv.FormatUint(m.Seq, 10))
	h.Set(hdrSubject, m.Subject)
	h.Set(hdrTimeStamp, time.Unix(0, m.Time).UTC().Format(time.RFC3339Nano))
	h.Set(HeaderTier, tierName)
	return &nats.Msg{Header: h, Data: m.Data}, nil
}

// msgSize is the number of bytes the server counts against max payload for
// m: its encoded header and its payload.
func msgSize(m *nats.Msg) int64 {
	n := int64(len(m.Data))
	if len(m.Header) == 0 {
		return n
	}
	n += int64(len("NATS/1.0\r\n\r\n"))
	for k, vs := range m.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

// endOfBatch is the message that ends a range batch.
func endOfBatch(lastSeq, pending uint64) *nats.Msg {
	h := nats.Header{}
	h.Set(HeaderStatus, "204")
	h.Set(HeaderDescription, "EOB")
	h.Set(HeaderLastSeq, strconv.FormatUint(lastSeq, 10))
	h.Set(HeaderNumPending, strconv.FormatUint(pending, 10))
	return &nats.Msg{Header: h}
}

// errorReply is the micro error reply for err, as micro.Request.Error sends
// it.
func errorReply(err error) *nats.Msg {
	code, desc := errorCode(err)
	return &nats.Msg{Header: nats.Header{
		micro.ErrorCodeHeader: []string{code},
		micro.ErrorHeader:     []string{desc},
	}}
}
