package testenv

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-tiered/nts/internal/tools"
)

// toolBuild is the outcome of building one tool, once per test process.
type toolBuild struct {
	once sync.Once
	path string
	err  error
}

var (
	toolsMu sync.Mutex
	builds  = map[string]*toolBuild{}
)

// Tool returns the path of an executable of the named tool ("versitygw" or
// "nats"), built from the version pinned in the repository's tools module
// (tools.Build). A process builds each tool at most once. A failed build
// fails the test with go's output.
func Tool(t testing.TB, name string) string {
	t.Helper()
	toolsMu.Lock()
	b := builds[name]
	if b == nil {
		b = &toolBuild{}
		builds[name] = b
	}
	toolsMu.Unlock()
	b.once.Do(func() {
		start := time.Now()
		var built bool
		b.path, built, b.err = tools.Build(name)
		if built {
			t.Logf("testenv: built %s in %v", name, time.Since(start).Round(time.Millisecond))
		}
	})
	if b.err != nil {
		t.Fatalf("testenv: tool %s: %v", name, b.err)
	}
	return b.path
}
