package index

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/nats-tiered/nts/internal/testenv"
)

// TestFilterKept commits blocks with and without a subject filter: another
// replica's view, the head and a tier update keep each filter byte for
// byte, and an entry without one stays without.
func TestFilterKept(t *testing.T) {
	s := testenv.RunNATS(t)
	writer := openReplica(t, s, Options{}).ix
	reader := openReplica(t, s, Options{}).ix
	ctx := testCtx(t, 20*time.Second)
	withFilter := meta("KV_B", 1, 10)
	withFilter.Filter = []byte{1, 7, 0x00, 0xff, 0x10, 0x22, '"', '\\', 0x80, 0x7f}
	plain := meta("KV_B", 11, 20)
	rev, err := writer.Commit(ctx, withFilter, 0, "leader-1", "inc-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Commit(ctx, plain, rev, "leader-1", "inc-1"); err != nil {
		t.Fatal(err)
	}
	if err := writer.UpdateTiers(ctx, "KV_B", 1, []string{"blob"}); err != nil {
		t.Fatal(err)
	}
	h, _, err := writer.Head(ctx, "KV_B")
	if err != nil || h.Block.Filter != nil {
		t.Fatalf("head of a block without a filter has filter %v: %v", h.Block.Filter, err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, want := range []BlockMeta{withFilter, plain} {
			got, ok := reader.Block("KV_B", want.FirstSeq)
			switch {
			case !ok:
				return fmt.Errorf("block %d not in the view", want.FirstSeq)
			case !bytes.Equal(got.Filter, want.Filter) || (want.Filter == nil) != (got.Filter == nil):
				return fmt.Errorf("block %d: filter %v, want %v", want.FirstSeq, got.Filter, want.Filter)
			case want.FirstSeq == 1 && (len(got.Tiers) != 1 || !sameBlock(&got, &want)):
				return fmt.Errorf("block 1 after a tier update: %+v", got)
			}
		}
		return nil
	})
}
