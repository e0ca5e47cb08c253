// Package faultrelay is a fault-injecting TCP relay for end-to-end tests.
//
// A [Relay] listens on a loopback address and forwards every accepted
// connection to a fixed target address. Placed between hopc and hops it
// reproduces the network failures behind "keepalive timeout" errors:
//
//	r, err := faultrelay.Start("127.0.0.1:0", hopsAddr)
//	...
//	defer r.Close()
//	// point hopc at r.Addr(), let the tunnel come up, then:
//	r.BlackHole(faultrelay.Both) // keepalives vanish; both sockets stay open
//	// ... wait for the keepalive timeout ...
//	r.Heal()
//
// # Faults
//
// Each [Direction] has one mode, set by the last call that touches it:
//
//   - normal forwarding ([Relay.Heal]);
//   - [Relay.BlackHole]: the relay keeps reading from the source socket and
//     discards what it reads, so both TCP connections stay open and every
//     byte is ACKed, as when a middlebox swallows a flow. Bytes already
//     inside the relay when the black hole starts are discarded too, and so
//     is an end-of-stream: dropped is dropped, nothing of it is delivered
//     after Heal.
//   - [Relay.Stall]: the relay stops reading from the source socket and
//     starts no more writes to the destination, so the sender's buffers
//     fill and its writes block. Nothing is lost: after Heal the buffered
//     bytes are delivered in order.
//
// Independently of the mode, [Relay.SetRate] throttles a direction with a
// smooth token bucket that starts empty (bursts of at most [MaxBurst]
// bytes, 50 ms worth of the rate when that is less) and [Relay.SetDelay] adds latency to every
// chunk. Chunks are timestamped when read and queued, so a delay does not
// lower throughput to one chunk per delay; the queue holds at most
// [MaxQueue] bytes per direction of a connection, which caps throughput
// at about MaxQueue/delay. A rate applies to a direction of the relay as a
// whole, shared by all its connections, like a bottleneck link. Faults,
// rates and delays take effect at once, on existing and new connections,
// and may be changed at any time from any goroutine.
//
// # Buffers
//
// The relay sets the kernel send and receive buffers of its own sockets to
// [SocketBuffer] bytes (Linux doubles the value for bookkeeping), and when
// no delay is set it holds at most three reads of [ChunkSize] bytes per
// direction of a connection. Throttling and stalls therefore back up into the sender
// within a few hundred KiB instead of vanishing into large auto-tuned
// kernel buffers.
//
// # Connection lifetime
//
// End of stream is propagated: when one side half-closes (CloseWrite), the
// relay half-closes the other side once everything before it has been
// written, unless that direction is black-holed. When both directions have
// ended, the relay closes both sockets. An error on either socket aborts
// the pair with a reset (RST) on both sides, as does [Relay.ResetAll].
// If the target cannot be dialed, the accepted connection is reset.
package faultrelay
