// Package protocol defines hop's wire format between hopc and hops: the
// frame codec (a fixed 6-byte header carrying a version, a message type and
// a payload length, followed by a JSON payload of at most MaxPayload bytes)
// and the typed messages carried in frames.
//
// The layout of the header never changes between versions, so a peer of any
// version can read the version byte of any other and refuse it with a clear
// error. docs/PROTOCOL.md describes every field.
package protocol
