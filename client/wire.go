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

// Headers of the KV, object and paging replies.
const (
	// HeaderKVOperation, on a KV entry reply, is the entry's operation:
	// "PUT", "DEL" or "PURGE" (the stored KV-Operation header, PUT when
	// there is none).
	HeaderKVOperation = "Nts-Kv-Operation"
	// HeaderMore, on the end of a kv.keys, obj.list or obj.get batch, is
	// "true" when the request has more to return: ask again from
	// HeaderLastKey (keys and lists) or HeaderNextChunk (objects).
	HeaderMore = "Nts-More"
	// HeaderLastKey, on the end of a kv.keys or obj.list batch, is the last
	// key (kv.keys) or base64url-encoded object name (obj.list) the batch
	// covered: the next batch's "after".
	HeaderLastKey = "Nts-Last-Key"
	// HeaderObjNUID, on the end of an obj.get batch, is the NUID of the
	// object's chunks: later batches pass it as "nuid" so that they read
	// the same version of an object that is being overwritten.
	HeaderObjNUID = "Nts-Obj-Nuid"
	// HeaderNextChunk, on the end of an obj.get batch, is the index of the
	// chunk the next batch starts at (the object's chunk count when done).
	HeaderNextChunk = "Nts-Next-Chunk"
	// HeaderObjDigest, on the end of an obj.get batch, is the object's
	// digest as its info holds it ("SHA-256=<base64url>").
	HeaderObjDigest = "Nts-Obj-Digest"
)

// KV operations as HeaderKVOperation gives them.
const (
	KVPut   = "PUT"
	KVDel   = "DEL"
	KVPurge = "PURGE"
)

// KVGetSubject is the subject of the kv.get endpoint for one key of bucket.
// Its body is empty (the newest revision) or a KVGetRequest.
func KVGetSubject(prefix, bucket, key string) string {
	return prefix + ".kv." + bucket + ".get." + key
}

// KVKeysSubject is the subject of the kv.keys endpoint of bucket. Its body
// is empty (every key) or a KVKeysRequest.
func KVKeysSubject(prefix, bucket string) string { return prefix + ".kv." + bucket + ".keys" }

// KVHistorySubject is the subject of the kv.history endpoint for one key of
// bucket. Its body is empty or a KVHistoryRequest.
func KVHistorySubject(prefix, bucket, key string) string {
	return prefix + ".kv." + bucket + ".history." + key
}

// ObjInfoSubject, ObjGetSubject and ObjListSubject are the subjects of the
// obj.info, obj.get and obj.list endpoints of bucket. Names travel in the
// JSON body, since they may hold any characters.
func ObjInfoSubject(prefix, bucket string) string { return prefix + ".obj." + bucket + ".info" }

// ObjGetSubject: see ObjInfoSubject.
func ObjGetSubject(prefix, bucket string) string { return prefix + ".obj." + bucket + ".get" }

// ObjListSubject: see ObjInfoSubject.
func ObjListSubject(prefix, bucket string) string { return prefix + ".obj." + bucket + ".list" }

// KVGetRequest is the body of kv.get. With Revision 0 the reply is the key's
// newest entry, and a key whose newest operation is DEL or PURGE is a 404;
// with a Revision, that revision (stream sequence) of the key, whatever its
// operation, or a 404 when it is not a revision of the key, was hidden by a
// later PURGE, or has expired from the archive.
type KVGetRequest struct {
	Revision uint64 `json:"revision,omitempty"`
}

// KVKeysRequest is the body of kv.keys. The reply is a batch of messages,
// each a JSON KVKeysPage, in ascending key order, then an end-of-batch
// message (HeaderStatus 204) with HeaderMore and HeaderLastKey. Only keys
// whose newest operation is PUT are listed.
type KVKeysRequest struct {
	// Filter selects keys with NATS wildcards ("orders.*", "a.>"); empty
	// is every key.
	Filter string `json:"filter,omitempty"`
	// After lists the keys after this one (the last batch's HeaderLastKey).
	After string `json:"after,omitempty"`
	// MaxKeys bounds the keys of one batch (0: the service's default).
	MaxKeys int `json:"max_keys,omitempty"`
}

// KVKeysPage is the payload of one message of a kv.keys batch.
type KVKeysPage struct {
	Keys []string `json:"keys"`
}

// KVHistoryRequest is the body of kv.history. The reply is the key's
// entries in revision order from the newest PURGE on (as a KV watch of the
// key with history would show them), as messages like kv.get's replies,
// then an end-of-batch message with HeaderLastSeq and HeaderNumPending, as
// msg.range ends its batches.
type KVHistoryRequest struct {
	// StartRevision starts the batch at this revision (the last batch's
	// HeaderLastSeq + 1).
	StartRevision uint64 `json:"start_revision,omitempty"`
	// MaxMsgs bounds the entries of one batch (0: the service's default).
	MaxMsgs int `json:"max_msgs,omitempty"`
}

// ObjRequest is the body of obj.info and obj.get. obj.info replies the
// object's info as JSON, byte for byte as the object store wrote it (what
// jetstream.ObjectInfo decodes). obj.get replies a batch of chunk messages in
// order (payload the chunk's bytes, headers as a msg.get reply's), then an
// end-of-batch message (HeaderStatus 204) with HeaderObjNUID,
// HeaderNextChunk, HeaderObjDigest and HeaderMore. A deleted object, and
// one whose chunks are not all archived, is a 404.
type ObjRequest struct {
	// Name is the object's name, any characters.
	Name string `json:"name"`
	// NUID pins obj.get to one version of the object: the HeaderObjNUID of
	// an earlier batch. A version no longer current is still served while
	// its chunks are archived.
	NUID string `json:"nuid,omitempty"`
	// StartChunk is the index of the first chunk of an obj.get batch.
	StartChunk int `json:"start_chunk,omitempty"`
	// MaxBytes bounds the chunk bytes of one obj.get batch (0: the
	// service's default); a batch holds at least one chunk. The requester
	// paces a large object by asking for the next batch when it is ready
	// for it.
	MaxBytes int64 `json:"max_bytes,omitempty"`
}

// ObjListRequest is the body of obj.list. The reply is a batch of messages,
// each the JSON object info of one object that is not deleted, in the order
// of their base64url-encoded names, then an end-of-batch message with
// HeaderMore and HeaderLastKey.
type ObjListRequest struct {
	// After lists the objects after this base64url-encoded name (the last
	// batch's HeaderLastKey).
	After string `json:"after,omitempty"`
	// MaxObjects bounds the objects of one batch (0: the service's default).
	MaxObjects int `json:"max_objects,omitempty"`
}
