// Package index keeps the block index of nts in a JetStream KV bucket: one
// entry per sealed block, one head per stream that fences its leader, and
// the per-stream leader locks in a second bucket. Every replica holds an
// in-memory view of the index, loaded by Open and kept current by following
// the bucket, so finding the block that holds a sequence or a time is a
// binary search in memory, never a scan of the bucket or of block data.
//
// # Keys
//
// The index bucket (default "nts_index") holds
//
//	blk.<stream>.<first seq>   BlockMeta as JSON, written once per block
//	head.<stream>              Head as JSON: last sealed seq, the last block,
//	                           its leader and the stream's incarnation
//
// and the lock bucket (default "nts_index_locks")
//
//	lock.<stream>              the leader's instance id
//
// <first seq> is decimal. <stream> is the stream's name when it is made only
// of [A-Za-z0-9_-]; any other name (JetStream allows any printable character
// but whitespace and . * > / \, KV keys only [-/_=.a-zA-Z0-9]) is written as
// "=" and the name in unpadded base64url (see StreamToken). A plain name
// never starts with "=", so the two forms cannot collide.
//
// # Commit
//
// A block's entry is never overwritten: a write to "blk.<stream>.<first>"
// expects the key to have no value (a delete marker from an expired block of
// an earlier life of the stream is fine), and an existing different entry is
// reported as ErrConflict. The head is only ever moved by a write that
// expects the revision the leader read (Head, then Commit with that
// revision): when two leaders commit from the same head, exactly one write
// succeeds and the other gets ErrFenced, and a deposed leader's commit
// leaves nothing behind.
//
// By default Commit makes two conditional writes: the head first, then the
// block entry. The head holds the block's whole description, so a crash
// between the two leaves a head whose entry is missing, and Repair, which
// the ingest calls when it takes a stream over, writes it from the head.
// Writing the entry first instead would let a deposed leader leave an entry
// for a block that no head ever accepted. A reader that follows the bucket
// sees the head a moment before the entry; WaitFor waits for the entry.
//
// With Options.AtomicCommit the two writes are one atomic batch (nats-server
// 2.12 added atomic batch publish; Open turns on AllowAtomicPublish on the
// index bucket's stream): the block entry, then the head, each with its
// expected last subject sequence. The server checks both and stores both or
// neither, so no crash leaves a head without its entry. nats.go v1.56 has no
// batch API, so the batch is three headers (Nats-Batch-Id,
// Nats-Batch-Sequence, Nats-Batch-Commit) on plain publishes; see
// publishAtomic. It is not the default because of its cost: the server
// stages each batch to an R1 file-backed stream in a file store of its own
// and syncs it, and commits batches to a stream one at a time. On the
// reference machine (2 vCPU, ext4; BenchmarkCommit) one leader commits about
// 310 blocks/s with batches against 4,500 to 5,600 with two writes, and 8
// leaders together 330 against 6,300 to 8,100. Both modes fence alike, and the crash window of
// two writes is closed by Repair, so the faster one is the default.
//
// Deleting an entry (block expiry) leaves a purge marker that expires after
// Options.MarkerTTL, so the bucket does not fill with markers yet a watch
// that falls behind still sees the deletion. The marker of the head's own
// block is kept: it tells Repair that the missing entry was deleted on
// purpose. Repair also compares revisions, so a marker older than the head
// (an earlier life of the stream) does not stop it.
//
// # Leader election
//
// Each stream's ingest runs on the one replica holding "lock.<stream>"
// (Campaign). The lock bucket has a bucket-wide TTL (MaxAge = LockTTL,
// history 1) rather than per-key TTLs, because KeyValue.Update, the renewal,
// drops a key's per-key TTL: a renewed lock would never expire. Every
// renewal writes a new revision, which restarts the key's age; a leader that
// stops renewing (dead, frozen, cut off) loses the key when it ages past the
// TTL, and the next Create by another replica succeeds (the server expires
// by age with some delay: a 1s lock was free about 1.25s after its last
// write in TestLockExpiryLetsCreateSucceed). A leader whose renewal fails
// stops leading at once, before the key can expire. The lock only decides
// who should work; the head's revision is what keeps two leaders from both
// committing.
//
// # View
//
// The view follows the bucket with an ordered consumer on its stream (the
// newest message of every blk and head key, then every new message), which
// starts over from where it was as soon as a lost connection is back; the KV
// watch of nats.go notices a lost consumer only through missed heartbeats,
// 10 to 20 seconds after a server restart. Close deletes that consumer,
// which the client library would leave on the server until its inactive
// threshold (5 minutes) passed.
//
// The view holds, per stream, the block entries sorted by first sequence in
// one slice, guarded by an RWMutex: Lookup is a binary search under the read
// lock and does not allocate; a block appended after the last one (the
// common case) and the removal of the first one (expiry) are O(1) amortised;
// the entries loaded by Open are sorted once. Lookup takes about 55ns among
// 1,000 blocks and 200ns among 100,000 (BenchmarkLookup); read-locking from
// several goroutines costs a little throughput to cache-line contention, far
// less than anything done with the block found, so the view does not copy
// on write. Entries that do not decode to what their key says are logged
// and kept out of the view. A BlockMeta returned by the view shares its
// Tiers slice with the view and must not be modified.
package index
