package testenv

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerNames returns the names of str's consumers, sorted, and fails the
// test if they cannot be listed.
func ConsumerNames(t testing.TB, ctx context.Context, str jetstream.Stream) []string {
	t.Helper()
	var names []string
	l := str.ConsumerNames(ctx)
	for name := range l.Name() {
		names = append(names, name)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("consumers of %s: %v", str.CachedInfo().Config.Name, err)
	}
	slices.Sort(names)
	return names
}
