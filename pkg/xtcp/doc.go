// Package xtcp is hop's P2P data path between two hopc clients, once the
// server (hops) has handed both of them the same session ID, their roles
// and each other's candidates: authenticated UDP hole punching (Punch),
// then on the same socket and 5-tuple either xtcp — yamux streams over KCP
// (DialKCP, AcceptKCP) — or xudp — encrypted datagrams (NewDatagramPath).
// Both keep the NAT mapping open with keepalives and report a dead path as
// ErrPathDead, so the caller can punch again or fall back to the relay.
//
// # Links
//
// hop itself runs xtcp and xudp over a Link: one visitor↔owner
// conversation whose packets travel over whichever Carrier works at the
// moment — a punched UDP path (UDPCarrier), a punched TCP connection, or
// the server's relay (StreamCarrier over a sealed stream) — chosen per
// packet in that order, skipping a direct carrier that has stalled (sent
// on for LinkConfig.StallAfter with nothing back). Carriers are attached
// and lost while the conversation goes on: an xtcp Session on a link
// (NewLinkSession) starts on the relay, moves to the punched path when it
// is attached and back to the relay when it stops answering, without a
// stream being reset, because KCP retransmits what a switch loses. Over a
// reliable carrier KCP runs with a longer RTO and without fast resend, and
// the carrier drops retransmissions of what it already took (resend.go).
// DialKCP and AcceptKCP are a link of one UDP carrier that ends with it.
//
// # Use
//
//	owner and visitor, each with its own socket:
//	  local, _ := xtcp.LocalPrefixes()
//	  remote := xtcp.OrderCandidates(local, candidatesFromServer)
//	  res, err := xtcp.Punch(ctx, conn, xtcp.PunchConfig{Key: key,
//	      SessionID: sid, Role: role, Remote: remote, StartAt: startAt})
//	  // on *xtcp.PunchError: report err.Reason, use the relay
//	visitor: s, err := xtcp.DialKCP(conn, res.Remote, key, sid, xtcp.SessionConfig{})
//	owner:   s, err := xtcp.AcceptKCP(conn, res.Remote, key, sid, xtcp.SessionConfig{})
//	  st, err := s.Open() / s.Accept()
//	  <-s.Done(); errors.Is(s.Err(), xtcp.ErrPathDead) → punch again
//
// Punch reads the socket while it runs; after it, the Session or
// DatagramPath owns the socket and closes it. key is the attempt key, which
// the caller derives from the ISK of a PAKE exchange between the two peers
// (hop: pkg/client, keyed by the proxy's secretKey), fresh per attempt.
// Every working key is HKDF-SHA256(key, salt = sessionID, info = label);
// the labels are
// "hop punch v1" (control packets), "hop kcp v1 visitor|owner" and
// "hop xudp v1 visitor|owner" (data frames, by sending role) and
// "hop kcp conv v1" (KCP's conversation ID).
//
// # Candidates
//
// A Candidate is an address and a kind: host (an interface address),
// srflx (server-reflexive: the NAT mapping the server saw), predicted (a
// guessed mapping), prflx (peer-reflexive: where an authentic probe came
// from), mapped (a port the peer's gateway forwards on request, UPnP IGD,
// NAT-PMP or PCP). Its JSON form is {"addr":"10.1.0.10:4000","kind":"host"}.
// OrderCandidates puts host candidates in a shared subnet first, then
// other private host candidates, then mapped ones, then reflexive and
// public host ones, then predicted ones.
//
// # Control packets
//
// Punching and the path keepalive use one fixed-size 68-byte packet
// (integers big-endian):
//
//	offset size field
//	0      4    magic "HOPP" (0x48 0x4f 0x50 0x50)
//	4      1    version, 1
//	5      1    type: 1 Probe, 2 ProbeAck, 3 Selected, 4 SelectedAck,
//	            5 Keepalive, 6 KeepaliveAck, 7 Close
//	6      16   session ID (from the server; identifies the punch attempt)
//	22     1    sender role: 1 visitor, 2 owner
//	23     1    reserved, 0
//	24     4    sequence: the sender's counter for Probe, Keepalive;
//	            an ack echoes the sequence of the packet it answers
//	28     8    sender timestamp, Unix nanoseconds (signed)
//	36     16   nonce, random
//	52     16   HMAC-SHA256 over bytes 0..51, truncated to 16 bytes, keyed by
//	            HKDF-SHA256(attempt key, salt = session ID, info = "hop punch v1")
//
// A receiver drops a packet of any other length, magic, version, type,
// role or reserved value; of another session; whose MAC does not verify;
// that carries its own role (a reflection); whose timestamp is more than
// MaxClockSkew (default 60 s) from its clock; or whose nonce it has seen
// within that window. Only then does it act on the packet.
//
// # Punch and the agreement rule
//
// From StartAt both peers send Probes in rounds, one to every candidate
// (Interval apart, doubling after each second; at most MaxPackets packets
// and MaxRate per second), and answer every authentic Probe with a
// ProbeAck to the address it came from; an authentic packet from an
// unlisted address makes that address a peer-reflexive candidate. A round
// trip completes when a ProbeAck comes back from the address its Probe
// went to.
//
// The owner decides. It waits one Interval after its first completed
// round trip (not at all if that one is a LAN address), then picks among
// the completed ones a LAN address if there is one, else the first to
// complete, and sends Selected to it every round until the visitor's
// SelectedAck (or its path Keepalive) arrives from that address. The
// visitor takes the address the first authentic Selected came from,
// answers SelectedAck and is done. So both use the 5-tuple on which the
// owner saw a round trip complete. After Punch, the path answers late
// Probes (the owner adds a Selected) and Selecteds, so a lost
// confirmation costs one retry.
//
// Loss: every step repeats until it is answered (Probes every round,
// Selected every round, the visitor's path answers every Selected it sees
// again), so random loss only delays the punch. With the defaults a round
// of two candidates is 80 packets in the first second; with 10 % loss on
// each of two NATs in each direction (19 % per one-way trip, 34 % per
// round trip) the first round trip completes within a few rounds and the
// punch takes a few round trips more than without loss, using a small
// part of MaxPackets (TestPunchLoss: at most 12 of 200 packets, and 20 of
// 200 at 20 % per NAT). What defeats a punch under loss is a missing
// candidate: a side whose STUN answer was lost has no server-reflexive
// address to offer (package nat retransmits for that reason).
//
// # Data frames
//
// After the punch, KCP packets (xtcp) and datagrams (xudp) travel in
// frames (integers big-endian):
//
//	offset size field
//	0      4    magic "HOPD"
//	4      1    version, 1
//	5      1    kind: 1 KCP packet, 2 datagram
//	6      8    counter: 0, 1, 2, ... per sender
//	14     n    payload, ChaCha20-Poly1305 ciphertext
//	14+n   16   tag
//
// The key is HKDF-SHA256(attempt key, salt = session ID, info = "hop kcp v1
// " or "hop xudp v1 " followed by the sender's role); the nonce is four
// zero bytes then the counter; the additional data is bytes 0..13. A
// receiver drops frames from other addresses, frames that do not open and
// counters already seen or more than 1984 behind the highest seen.
// Control packets and frames share the socket, told apart by the magic.
//
// # KCP
//
// kcp-go runs over a packet conn that reads and writes through the path,
// with its own encryption and FEC off (the frames already authenticate and
// encrypt; kcp-go's BlockCrypt would not authenticate). Defaults
// (DefaultKCPConfig): nodelay on, 10 ms update interval (kcp-go's floor),
// fast resend after 2 ACK skips, no congestion window, windows of 1024
// packets, MTU 1350, stream mode, ACKs sent at once, writes flushed at
// once; a small yamux frame (header and body) goes out as one KCP write,
// so as one packet. Latency thus does not wait for the update timer.
// Sealed KCP packets leave through a send queue: whatever is queued goes
// to the kernel in one sendmmsg, runs of equal-sized packets as one buffer
// with UDP segmentation offload (Linux; it falls back to single packets if
// the kernel refuses); the reader takes up to 32 packets per recvmmsg.
// kcp-go never gives up retransmitting; the path keepalive, and a yamux
// ping every KeepaliveInterval that must come back through KCP within
// KeepaliveTimeout while nothing else arrives through KCP, turn a dead or
// stalled path (an MTU black hole: keepalives pass, full packets do not)
// into ErrPathDead.
//
// # Keepalive
//
// Each end sends a Keepalive every KeepaliveInterval (default 10 s, under
// common NAT UDP timeouts) and every tick once the peer has been silent
// for an interval; the peer answers KeepaliveAck (the RTT in PathStats).
// Any authentic packet counts as life. After KeepaliveTimeout (default
// 30 s) without one, the path ends with ErrPathDead. Close sends Close
// twice, so the peer ends at once with ErrPeerClosed.
//
// The interval can change while the path lives (UDPCarrier and
// Link.SetKeepaliveInterval, for hopc's keepaliveInterval = "auto", which
// learns it from the NAT); the timeout stays, and the interval must stay
// below it. A Link passes its interval on to UDP carriers attached later
// and to its Session's stall ping.
package xtcp
