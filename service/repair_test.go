package service_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/service"
)

// TestCorruptCopyRepaired damages the file tier's copy of a block: a read
// falls through to the blob tier, and within a policy round the file copy
// is rewritten from the blob's and serves reads again.
func TestCorruptCopyRepaired(t *testing.T) {
	e := newAPIEnv(t)
	cfg := e.config(t)
	cfg.Tiers.PolicyInterval = service.Duration(time.Second)
	e.run(t, cfg)
	ix, err := index.Open(t.Context(), e.js, index.Options{Bucket: cfg.Index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	const seq = 200
	bm, ok := ix.Lookup("ORDERS", seq)
	if !ok {
		t.Fatalf("no block holds seq %d", seq)
	}
	path := filepath.Join(cfg.Tiers.File.Dir, filepath.FromSlash(bm.Key))
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	for i := 16; i < len(bad)-64; i++ {
		bad[i] ^= 0x55
	}
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	get := func() (string, error) {
		m, err := e.request(fmt.Sprintf("nts.get.ORDERS.%d", seq), nil)
		if err != nil {
			return "", err
		}
		e.checkMsg(t, m, seq)
		return m.Header.Get(client.HeaderTier), nil
	}
	if tr, err := get(); err != nil || tr != "blob" {
		t.Fatalf("read of a corrupt file copy: tier %q, %v; want blob", tr, err)
	}
	checkFor(t, 10*time.Second, func() error {
		if tr, err := get(); err != nil || tr != "file" {
			return fmt.Errorf("served from %q (%v), want the repaired file copy", tr, err)
		}
		return nil
	})
	if now, err := os.ReadFile(path); err != nil || string(now) != string(good) {
		t.Fatalf("the file copy after repair differs from the block as written (%v)", err)
	}

}
