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
//     its consumer gone. On an Interest-retention stream the consumer is
//     instead reset to head+1 and kept from term to term: deleting it
//     would drop at once every message the stream's other consumers have
//     acked, archived or not, and keeping it holds nts's interest in the
//     stream while no replica runs. A server that cannot reset a consumer
//     gets the delete and a warning.
//
//     Where the server resets consumers (JetStream API level 4, nats-server
//     2.14 and later), the durable consumer is never fetched from: it is
//     the archive's cursor, and the messages are read through a reader,
//     "<consumer>-reader", made anew at head+1 by each term, which acks
//     nothing (AckNone) and keeps its state in memory. An acknowledged
//     consumer costs the server a pending entry, an ack timer and a
//     delivery record for every message of the block being built (and on
//     a replicated stream a Raft proposal for each delivery). Draining a
//     backlog of 200k messages of 256 B on two cores, nts went from a median
//     0.74x the rate of a consumer that acks nothing (10 runs) reading
//     through the durable consumer to 0.92x reading through the reader.
//     Older servers, and a stream or account whose limits refuse one more
//     consumer, are read through the durable consumer as before.
//
//  2. It fills a block builder from the consumer's deliveries, fetched by a
//     pull loop of its own (puller: the JetStream pull protocol on a core
//     subscription, with a heartbeat check once an interval rather than a
//     timer rearmed each message) that keeps a window of 4 MiB fetched ahead
//     (or the server's max_payload and a little more, where that is larger)
//     and asks for more as soon as half of it is used. It hands the builder
//     over when it reaches the target size, when its oldest message has waited
//     max_linger, or, holding at least a quarter of the target size, when the
//     stream has gone quiet: nothing pending at the server after the last
//     message and no message for a quarter of max_linger (at most 100ms) since
//     that one was stored, or, whatever it holds, once nothing is pending
//     and its oldest message was stored max_linger ago or more (ages by the
//     server's clock, its skew estimated when the term makes the consumer).
//     The tail of a burst is then archived at once, and the last block of a
//     drained backlog or a catch-up as its last message comes, while a
//     steady stream still fills whole blocks and a trickle seals by
//     max_linger. Up to two sealed blocks are written to the tiers while the
//     next fills; a handler waiting for the writer stops the pulls.
//
//  3. A written block is committed in order: a compare-and-set of the head
//     (which fences a deposed leader: its commit fails and it never acks)
//     and the block's index entry.
//
//  4. Then the durable consumer is moved past the block's last message (a
//     reset, confirmed by the server; at most one each 100ms, always to the
//     newest commit, so it never steps back), which on an Interest stream
//     releases the block's messages as acks would; read through the
//     durable consumer, the block's last message is acked (the consumer
//     acks all) and the ack confirmed. A cursor deleted by hand ends the
//     term, and the next makes it anew.
//
// A crash anywhere loses nothing (nothing past the head is acked or passed
// by the cursor, and each term reads again from the head) and duplicates
// nothing (messages at or below the head are acked and skipped;
// their content is checked against the archive and a difference is logged
// loudly, the archive keeping the first version). A delivery that never
// reaches the handler (dropped by a client left behind during a long tier
// outage, lost in a reconnect) shows as a gap in the consumer sequence: the
// term seals what came before it and ends, and the next term fetches from
// the head again, so a block never has a hole. Tier and index failures
// are retried with backoff and jitter; nothing is acked meanwhile. On
// SIGINT/SIGTERM the partial block is sealed, committed and acked once.
//
// A WorkQueue stream is never consumed directly (acks would delete its
// work): it is archived from a Limits-retention mirror, NTS_MIRROR_<stream>,
// under the original's name. What the archive holds is purged from the
// mirror after each block, so that the mirror stays small where the
// original sets no limits. A stream deleted and created again restarts its
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
// # KV buckets and object stores
//
// A KV bucket B is the stream KV_B, an object store the stream OBJ_B; the
// endpoints kv.get, kv.keys, kv.history, obj.info, obj.get and obj.list read
// their archive (the newest incarnation, KV_B~n, when the stream was
// deleted and created again). A bucket may hold millions of keys, so
// nothing is written per key or per message: blocks of KV and object
// streams carry a subject index in their footer (every distinct subject of
// the block, sorted and prefix-compressed, with the sequences of its
// messages and, for KV, each one's operation: put, delete or purge, from
// KV-Operation or the server's Nats-Marker-Reason), and a Bloom filter over
// their subjects (about 1.25 bytes per distinct subject) that rides in the
// block's index entry. The index still takes one write per block, and a
// replica keeps in memory only the entries with their filters and a
// bounded cache of opened footers.
//
// A lookup of one key (kv.get, kv.history, obj.info, an object's chunks)
// checks the filters of the archive's entries in memory, then reads the
// subject index of the blocks that may hold the key, newest first for
// kv.get and obj.info: a binary search and a few decoded entries per
// block, no frame read, then one frame for the message itself. kv.get of a
// key whose newest operation is a delete or purge is a 404 naming the
// revision; a revision older than the key's newest purge is hidden, as a
// KV read hides it. A listing (kv.keys, obj.list) merges the blocks' sorted
// subjects under the bucket's prefix, one block at a time, keeping the
// page's smallest keys with their newest entry: its memory is bounded by
// the page, and it reads every block of the archive (a filter cannot answer
// for a prefix). obj.get reads an object's info, then the sequences of its
// chunks from every block that may hold them; an object whose chunks are not
// all archived is a 404, never a short object. Blocks of these streams
// sealed without a subject index are not seen by these endpoints.
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
