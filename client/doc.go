// Package client reads JetStream streams, KV buckets and object stores with
// a transparent fallback to nts: what JetStream still holds comes from
// JetStream, what it let go (limits, purges, expired keys, deleted buckets)
// comes from the nts archive, through the same calls and the same types.
// It imports only nats.go, so programs can use it without the server side.
//
// A program using jetstream changes two lines:
//
//	c := client.New(nc)                  // instead of js, _ := jetstream.New(nc)
//	m, err := c.GetMsg(ctx, "ORDERS", 1) // instead of stream.GetMsg(ctx, 1)
//
// # Fallback
//
// Every read asks JetStream first. Only when JetStream answers "not found"
// (jetstream.ErrMsgNotFound, ErrKeyNotFound, ErrObjectNotFound, or
// ErrStreamNotFound and ErrBucketNotFound when the stream itself is gone)
// does the client ask nts. When nts does not have it either, the error is
// an *Error (Code 404 and nts's description) that unwraps to the same
// JetStream sentinels, so errors.Is(err, jetstream.ErrMsgNotFound) holds
// whichever answered. Other errors of nts are *Error with their code;
// replies that break the wire protocol are errors wrapping ErrInvalidReply
// and nothing of them is returned. JetStream's other errors are returned
// as they are.
//
// nts holds what it archived before JetStream let it go: a message that
// JetStream dropped before nts read it (limits tighter than nts's lag) is
// in neither, and is not found.
//
// Where the newest state matters, JetStream wins: a KV key whose newest
// revision in JetStream is a delete or purge marker is not found, even when
// nts archived an older value; Keys and List leave out the keys and objects
// JetStream holds deleted. A message, entry or object nts serves looks like
// the one JetStream served: same subject, sequence (revision), time,
// payload and headers, plus one header, HeaderTier ("Nts-Tier"), naming the
// tier that served it.
//
// Range iterates over a stream across the archive and JetStream; see its
// documentation for how the two meet without a gap or a duplicate.
//
// # Requests, timeouts and ownership
//
// Every call takes a context first. Requests to nts, and each wait for the
// next message of a batched reply, time out after the client's timeout
// (WithTimeout, default DefaultTimeout) when the context has no deadline;
// JetStream calls use jetstream's own default the same way. A Client, a
// KeyValue and an ObjectStore are safe for concurrent use; the messages,
// entries, infos and byte slices they return belong to the caller. An
// object reader is read by one goroutine and closed by any.
//
// # Wire protocol
//
// The subjects nts answers on and the headers of its replies are the
// exported constants and functions of wire.go: a message reply looks like a
// JetStream direct-get reply; errors are micro error replies
// (Nats-Service-Error-Code, Nats-Service-Error); what can exceed one
// message (msg.range, kv.keys, kv.history, obj.get, obj.list) comes as a
// batch of messages ended by a Status 204 message, and the client asks for
// the next batch from where the end marker says, when it is ready for it.
//
// After a stream is deleted and created again, nts archives the new
// incarnation apart as "<stream>~2", "<stream>~3", ...: GetMsg,
// GetLastMsgForSubject and Range of the plain name read the first
// incarnation's archive (name "<stream>~N" for a later one), the KV and
// object store reads the newest incarnation's.
package client
