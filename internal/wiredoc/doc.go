// Package wiredoc holds the test that keeps docs/wire.md, the wire contract of jetflow, in step
// with the code: it fails when non-test Go source names a NATS header, subject, stream, bucket,
// consumer, message ID or message kind that docs/wire.md does not mention. It has no code of its
// own.
package wiredoc
