package service

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/client"
)

// msgReply builds the reply carrying archived message m of stream, served
// by tierName: the payload byte for byte, the original headers (every value
// of every key), then the direct-get headers and Nts-Tier, which replace
// any original header of the same name.
func msgReply(stream string, m block.Msg, tierName string) (*nats.Msg, error) {
	var orig nats.Header
	if len(m.Header) > 0 {
		var err error
		if orig, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return nil, fmt.Errorf("stream %q seq %d: stored headers: %w", stream, m.Seq, err)
		}
	}
	// One map sized for every key, and one backing array for the five
	// values set here: a reply is built per message of a range.
	h := make(nats.Header, len(orig)+len(replyKeys))
	for k, vs := range orig {
		h[k] = append([]string(nil), vs...)
	}
	var ts [len(time.RFC3339Nano) + 8]byte
	vals := [len(replyKeys)]string{
		stream,
		strconv.FormatUint(m.Seq, 10),
		m.Subject,
		string(time.Unix(0, m.Time).UTC().AppendFormat(ts[:0], time.RFC3339Nano)),
		tierName,
	}
	backing := vals[:]
	for i, k := range replyKeys {
		h[k] = backing[i : i+1 : i+1]
	}
	return &nats.Msg{Header: h, Data: m.Data}, nil
}

// replyKeys are the headers msgReply sets, in the order of its values.
var replyKeys = [...]string{
	client.HeaderStream, client.HeaderSequence, client.HeaderSubject, client.HeaderTimeStamp, client.HeaderTier,
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
	h.Set(client.HeaderStatus, "204")
	h.Set(client.HeaderDescription, "EOB")
	h.Set(client.HeaderLastSeq, strconv.FormatUint(lastSeq, 10))
	h.Set(client.HeaderNumPending, strconv.FormatUint(pending, 10))
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
