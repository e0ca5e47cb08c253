// Package tcppunch punches a direct TCP connection between two hop clients
// behind NATs, for xtcp when UDP is blocked or fails, and carries the
// packets of their link (KCP) over it, sealed.
//
// # Where a TCP port's mapping appears
//
// An Endpoint binds one local TCP port with SO_REUSEADDR and SO_REUSEPORT
// and listens on it. Every socket of the punch is bound to that same port,
// so on a NAT that keeps the port (or maps endpoint-independently) all of
// them share one public mapping. Endpoint.Discover asks hops over STUN on
// TCP (one Binding request on hops' TCP bindPort, see docs/PROTOCOL.md
// "STUN over TCP") from that port and returns the public address hops saw:
// the server-reflexive candidate. Endpoint.Candidates adds the host
// addresses with the port. The two peers exchange candidates through hops
// (sealed, as for UDP) and agree on a start time.
//
// # Punch
//
// From Config.StartAt, set as for the UDP punch from both sessions' round
// trips so both sides start together (as go-libp2p's DCUtR does), each side
// dials every candidate of the peer from its port, over and over: one
// connect of at most DialTimeout, a fresh socket per try, RetryInterval
// between tries to one candidate. The first SYN of one side is usually
// dropped by the other side's NAT; it opens its own NAT's mapping, through
// which the other side's SYN then gets in. Both SYNs crossing makes a TCP
// simultaneous open, which yields one connection, connected on both sides'
// connect; a SYN that finds no connecting socket is taken by the
// Endpoint's listener and accepted. Both cases are handled alike.
//
// On every connection both sides authenticate before either trusts it:
//
//	hello (40 bytes)   magic "HOPT" | version 1 | role (1 visitor, 2 owner) |
//	                   2 bytes 0 | session ID (16) | nonce (16, random per connection)
//	proof (32 bytes)   HMAC-SHA256(HKDF-SHA256(key, salt = session ID,
//	                   info = "hop tcp v1 auth"), "hop tcp v1 proof" | role of
//	                   the sender | visitor's hello | owner's hello)
//
// Each side writes its hello, reads the peer's (a wrong magic or version is
// ErrHandshake, another session ErrSession, our own role ErrRole), writes
// its proof and checks the peer's (ErrAuth: the peer does not have the
// attempt key). The proofs cover both hellos, so neither a replayed nor a
// reflected proof verifies. Then every byte is a pkg/seal record (length,
// ChaCha20-Poly1305 with a counter nonce) under a key per direction:
// HKDF-SHA256(key, salt = session ID, info = "hop tcp v1 data " + sending
// role ("visitor" or "owner") + visitor's nonce + owner's nonce), fresh for
// every connection since each side's nonce is.
//
// Several connections can authenticate (one per candidate pair). The
// visitor takes the first and sends a nominate record on it; the owner
// takes the connection on which the nominate arrives. Every other
// connection is closed with SO_LINGER 0 (a reset, leaving no TIME_WAIT on
// the port). Punch fails with ErrTimeout when nothing is chosen by StartAt
// + Timeout, saying how many dials were made, how many connected and the
// last failure (as a NAT that maps every destination to a new port gives:
// every SYN goes to a port the peer did not dial).
//
// # Carrier
//
// The chosen connection is a Carrier: a packet carrier for the link layer
// above (SendPacket, RecvPacket, Silence, RTT, Done, Err, Close). Inside
// each sealed record the first byte is the kind:
//
//	1 packet     the rest is one packet of the link (at most MaxPacket bytes)
//	2 ping       8-byte big-endian sequence number
//	3 pong       the sequence number of the ping it answers
//	4 nominate   no body; the visitor's first record on the chosen connection
//
// and the seal end record is the close: Close sends it, and the peer ends
// with ErrPeerClosed. Send and receive queues are bounded and drop when
// full (the link's KCP retransmits), so a slow reader never stalls the
// keepalive. The Carrier pings every KeepaliveInterval on the same
// connection (the same 5-tuple, which keeps the NATs' mappings) and
// tolerates one missed answer (Natter's lesson: one lost keepalive is no
// dead path): it ends with ErrPathDead only when two pings in a row got no
// pong within an interval each, when nothing authentic arrived for
// KeepaliveTimeout, or when a write stalls for KeepaliveTimeout.
//
// # Sockets
//
// Sockets are made through the Sockets interface, so that tests can make
// them in a network namespace (ReuseSockets.Do is netlab's Host.Do).
package tcppunch
