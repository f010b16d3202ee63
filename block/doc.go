// Package block is the durable block format of nts: an immutable, compressed,
// checksummed run of one stream's messages, and the Builder that writes it
// and the Reader that reads it.
//
// A block holds messages of one stream in strictly increasing stream
// sequence order; sequences may have gaps (messages deleted before they were
// archived). The messages are grouped into frames of about Options.FrameSize
// raw bytes, each compressed on its own, so that one message can be read from
// a cold tier with one ranged read of one frame once the footer is known. The
// footer describes the block (stream, sequence and time range, codec), holds
// the frame table and a per-message index, and is found through a fixed-size
// trailer at the end. A block is self-describing: an index of blocks can be
// rebuilt from the blocks alone by reading their footers.
//
// A block sealed with Options.Subjects also holds a subject index in its
// footer: its distinct subjects in ascending byte order, prefix-compressed
// with a restart point every 16 subjects (as in LevelDB and Pebble sstable
// blocks), each with the sequences and marks (Msg.Mark) of its messages.
// Reader.Subject finds one subject with a binary search of the restart points
// and at most 16 decoded entries; Reader.Subjects scans subjects in order
// from a start point, for prefix scans and merges across blocks. Seal then
// also returns a Bloom filter over the subjects (Meta.Filter, laid out in
// filter.go) for an index to skip blocks that cannot hold a subject.
//
// # Layout
//
// All fixed-width integers are little-endian. "uvarint" and "varint" are the
// unsigned and zig-zag signed varints of encoding/binary. CRC-32C is CRC-32
// with the Castagnoli polynomial (hash/crc32).
//
//	+--------+---------+---------+-----+-----------+--------+---------+
//	| header | frame 0 | frame 1 | ... | frame N-1 | footer | trailer |
//	+--------+---------+---------+-----+-----------+--------+---------+
//	0        8                                                size-24   size
//
//	header (8 bytes)
//	  magic          [6]byte  "NTSBLK"
//	  version        uint16   1
//
//	frame i: the frame's raw bytes compressed on their own with the block's
//	codec: none (stored as is), s2 (one S2 block, as s2.Encode writes it) or
//	zstd (one single-segment zstd frame, which declares its content size);
//	or, in a block with flags bit 2, stored as is when the codec would save
//	less than 1/32 of them. A compressed frame is then always shorter than
//	its raw bytes, so a frame whose stored length equals its raw length is
//	one stored as is.
//	Frames lie back to back from offset 8 to the footer. The raw bytes of a
//	frame are its messages' records, back to back:
//	  subject len    uvarint
//	  header len     uvarint
//	  subject        [subject len]byte
//	  header         [header len]byte   raw NATS header ("NATS/1.0\r\n...")
//	  data           the rest of the record
//	A record's length, sequence and timestamp are in the footer.
//
//	footer
//	  stream len     uvarint  1..255
//	  stream         [stream len]byte
//	  first seq      uvarint  sequence of the first message (>= 1)
//	  seq span       uvarint  last seq - first seq
//	  first time     varint   earliest timestamp (unix ns)
//	  time span      uvarint  latest timestamp - earliest timestamp
//	  count          uvarint  messages, 1..MaxMsgs
//	  raw size       uvarint  sum of the frames' raw lengths
//	  codec          byte     0 none, 1 s2, 2 zstd
//	  flags          byte     bit 0: times sorted (time[i] >= time[i-1]);
//	                          bit 1: a subject index follows the message
//	                          index; bit 2: some frames of a compressed
//	                          block are stored as is; the other bits are 0
//	  frames         uvarint  number of frames, 1..count
//	  frame table, per frame:
//	    offset       uvarint  of the stored frame in the block
//	    stored len   uvarint
//	    raw len      uvarint  2..MaxMsgSize
//	    first seq    uvarint  first message's seq - block first seq
//	    count        uvarint  messages in the frame
//	    crc          uint32   CRC-32C of the stored bytes
//	  message index, as three columns in message order:
//	    seq gaps     count-1 uvarints: seq[i] - seq[i-1] - 1; the column is
//	                 absent when the block has no gaps (count == span + 1)
//	    lengths      count varints: len[i] - len[i-1], len[-1] = 0, where
//	                 len[i] >= 2 is the length of record i; a record's
//	                 offset in its raw frame is the sum of the lengths
//	                 before it there, and a frame's lengths sum to its raw len
//	    times        count values time[i] - time[i-1], time[-1] = first time:
//	                 uvarints when times are sorted, varints otherwise
//	  subject index, when flags bit 1 is set:
//	    subjects     uvarint  distinct subjects, 1..count
//	    entries len  uvarint
//	    entries, one per subject in ascending byte order:
//	      shared     uvarint  bytes in common with the previous subject;
//	                          0 at a restart point (entries 0, 16, 32, ...)
//	      suffix len uvarint
//	      suffix     [suffix len]byte  the rest of the subject
//	      msgs       uvarint  messages on the subject, >= 1
//	      list len   uvarint  bytes of the list
//	      list, one item per message in sequence order:
//	        delta    uvarint  seq - the subject's previous seq; for its
//	                          first, seq - the block's first seq
//	        mark     byte     Msg.Mark
//	    restarts     uint32 per restart point: its offset in entries
//	  Every message of the block is listed exactly once; Open checks this
//	  and the order of subjects and sequences.
//
//	trailer (24 bytes)
//	  footer offset  uint64
//	  footer len     uint32
//	  footer crc     uint32   CRC-32C of the footer
//	  version        uint16   1
//	  magic          [6]byte  "NTSBLK"
//
// A reader reads the trailer, then the footer (Open reads the tail of the
// block in one call, which holds both unless the footer is large), then one
// frame per message it needs. Every length and count read from a block is
// checked against the bytes present and the bounds below before anything is
// allocated, checksums are verified before anything is decompressed, and a
// frame must decompress to exactly its raw length; any mismatch is reported
// as an error wrapping ErrCorrupt that names the byte offset.
//
// The subject index came after the first blocks of format version 1 were
// written, as an addition that leaves them valid: a block without it is
// what it always was, and a reader that predates it rejects a block with it
// (flags bit 1 is one of the bits it requires to be 0) with a clear error
// rather than misreading it. The version stays 1. Frames stored as is
// (flags bit 2) came the same way: a block that has none does not set the
// bit, and one that has some is refused by a reader that predates them.
package block

// The constants below are part of the durable format: blocks already written
// depend on them, so they change only together with FormatVersion.
const (
	// FormatVersion is the version of the block format this package writes
	// and the only one it reads.
	FormatVersion uint16 = 1

	// magic opens the header and closes the trailer.
	magic = "NTSBLK"

	// headerSize is the length of the header: magic (6) and version (2).
	headerSize = 8

	// trailerSize is the length of the trailer: footer offset (8), footer
	// length (4), footer CRC-32C (4), version (2) and magic (6).
	trailerSize = 24

	// maxStreamLen is the longest stream name a footer holds (JetStream's limit).
	maxStreamLen = 255

	// MaxMsgSize bounds a message's record (subject, header, data and two
	// length varints) and so the raw length of any frame. It is above the
	// 64 MiB that NATS allows as max_payload.
	MaxMsgSize = 128 << 20

	// MaxMsgs bounds the messages in one block; Builder.Full reports true
	// when a builder holds that many.
	MaxMsgs = 1 << 20

	// maxFooterSize bounds the footer. A footer of MaxMsgs messages takes at
	// most 25 bytes per message (seq gap, length and time varints) and 54
	// bytes per frame, below it even with one frame per message. A subject
	// index adds at most 61 bytes per message (a seq delta and a mark, and
	// five varints per subject) and the subjects' names, which Builder.Full
	// keeps below a quarter of it: still below it.
	maxFooterSize = 128 << 20
)
