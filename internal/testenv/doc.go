// Package testenv starts the real servers that tests run against and builds
// the command-line tools they drive, each tied to the test that asked for it
// and stopped when that test ends.
//
//   - NATS: an embedded nats-server with JetStream, its store under
//     t.TempDir(), on a random port of 127.0.0.1.
//   - S3: RunS3Mem serves the S3 protocol from memory in process (gofakes3);
//     RunVersity runs versitygw, an S3 gateway over a local directory, as a
//     separate process; RunVersityServer returns a handle to stop it and
//     start it again, as an outage would. CreateBucket and S3Client work
//     with both.
//   - Tools: Tool builds a command pinned in the repository's tools module
//     (versitygw, the nats CLI) once and caches the binary across runs.
//
// Helpers take testing.TB, fail the test on error and register their cleanup
// with t.Cleanup. Nothing here is for use outside tests.
package testenv
