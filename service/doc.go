// Package service runs nts: the connection to NATS (or an embedded server),
// the tiers, the ingest of each stream and its lifecycle.
//
// # Ingest
//
// Every replica finds the streams to archive (all of them, or those the
// configuration names or matches, never nts's own buckets or mirrors; new
// streams are found through JetStream's stream-created advisories and a
// periodic rescan) and campaigns for each with a lock in the index's lock
// bucket. The holder of a stream's lock ingests it:
//
//  1. It reads the stream's head from the index (the last committed block)
//     and recreates the durable consumer (default "nts-<stream>") to start
//     at head+1. The head is the truth and the consumer only a cursor: a
//     new term never waits AckWait for messages a deposed or crashed leader
//     fetched but did not commit, and a deposed leader still fetching finds
//     its consumer gone.
//  2. It fills a block builder and hands it over when it reaches the target
//     size or its oldest message has waited max_linger. Up to two sealed
//     blocks are written to the tiers while the next fills.
//  3. A written block is committed in order: a compare-and-set of the head
//     (which fences a deposed leader: its commit fails and it never acks)
//     and the block's index entry.
//  4. Then the block's last message is acked (the consumer acks all) and
//     the ack confirmed.
//
// A crash anywhere loses nothing (unacked messages come again) and
// duplicates nothing (messages at or below the head are acked and skipped;
// their content is checked against the archive and a difference is logged
// loudly, the archive keeping the first version). Tier and index failures
// are retried with backoff and jitter; nothing is acked meanwhile. On
// SIGINT/SIGTERM the partial block is sealed, committed and acked once.
//
// A WorkQueue stream is never consumed directly (acks would delete its
// work): it is archived from a Limits-retention mirror, NTS_MIRROR_<stream>,
// under the original's name. A stream deleted and created again restarts its
// sequences at 1, so each later incarnation (told apart by the stream's
// creation time, kept in the head) is archived apart as "<stream>~2",
// "<stream>~3", ...; earlier archives stay readable and are never
// overwritten.
//
// # Headers
//
// nats.go hands a consumer its headers parsed into a map, so the archive
// keeps them as NATS defines them: every key with its case and every value
// of a repeated key in order; distinct keys are stored in sorted order.
//
// # Lifecycle
//
// Every policy_interval each replica evicts from its own memory and file
// tiers, and, for the streams it leads, from the shared blob tier; a block
// past the coldest tier's max_age is deleted everywhere with its index
// entry. The leader keeps each block's list of tiers in the index current.
// Objects the index does not list, ending at or below their archive's head
// and older than a grace period (the leftovers of a leader that wrote a
// block and lost leadership before committing it), are swept away.
package service
