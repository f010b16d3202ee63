//go:build race

package block

// raceEnabled: the race detector drops a quarter of what goes back to a
// sync.Pool, so codecs that keep scratch in one allocate it again and again.
const raceEnabled = true
