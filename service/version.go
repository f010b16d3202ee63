package service

import "runtime/debug"

// version is the release this source tree is; a binary built from a tagged
// module reports the tag instead.
const version = "0.1.0"

// Version returns the semantic version of this build, without a "v".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		if len(v) > 1 && v[0] == 'v' && v != "(devel)" {
			return v[1:]
		}
	}
	return version
}
