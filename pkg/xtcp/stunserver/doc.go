// Package stunserver is the STUN Binding server that hops runs so that hopc
// can learn its public address and the behaviour of the NAT in front of it
// (package nat). It speaks RFC 5389 Binding plus the RFC 5780 NAT behaviour
// discovery attributes RESPONSE-ORIGIN, OTHER-ADDRESS and CHANGE-REQUEST.
//
// # Sockets
//
// A server has one to four UDP sockets, named by which of the two addresses
// and which of the two ports they use:
//
//	primary    Primary.Addr():Primary.Port()   always
//	alt port   Primary.Addr():AltPort          when AltPort != 0
//	alt addr   AltAddr:Primary.Port()          when AltAddr is valid
//	alt both   AltAddr:AltPort                 when AltAddr is valid
//
// AltAddr needs AltPort (RFC 5780 behaviour discovery needs two addresses
// and two ports) and a concrete Primary address: a server bound to 0.0.0.0
// cannot tell which of the host's addresses is "the other one". With an
// unspecified Primary address the kernel picks the source address of each
// response, so a host with several public addresses should set a concrete
// Primary address.
//
// If Primary.Port() is 0 the kernel picks the port of the primary socket
// and the alt addr socket uses the same number (for tests).
//
// # Responses
//
// Only Binding requests (RFC 5389, with the magic cookie, length matching
// the datagram) are answered; everything else, including responses and
// indications, is dropped silently. A success response carries:
//
//   - XOR-MAPPED-ADDRESS and MAPPED-ADDRESS: the source of the request.
//   - RESPONSE-ORIGIN: the address of the socket the response is sent
//     from; left out when that socket is bound to an unspecified address.
//   - OTHER-ADDRESS, only when the server has an alternate port: the socket
//     that differs from the one the request arrived on (whatever
//     CHANGE-REQUEST asked, RFC 5780 §7.4) in both address and port (alt
//     both for a request to primary) when AltAddr is set, or in port only
//     (alt port for a request to primary) when it is not. In the
//     second case OTHER-ADDRESS has the IP the request was sent to, which
//     tells the client that only the port differs. With an unspecified
//     Primary address that IP is the unspecified address, meaning "the
//     address you sent this request to".
//   - SOFTWARE "hop".
//
// CHANGE-REQUEST (change IP, change port, or both) is honoured by answering
// from the socket that differs from the receiving one accordingly. When that
// socket does not exist (change IP without AltAddr, change port without
// AltPort) the server answers, from the receiving socket, with error 420
// (Unknown Attribute) listing CHANGE-REQUEST and saying why, never from a
// socket that was not asked for. A malformed CHANGE-REQUEST gets 400.
// PADDING is accepted and ignored (the response is not padded). Other
// unknown comprehension-required attributes (for example RFC 5780
// RESPONSE-PORT, which this server does not implement) get 420 listing
// them. USERNAME and MESSAGE-INTEGRITY are ignored: the server does not
// authenticate. A FINGERPRINT, if present, must be correct.
//
// # Delayed answers
//
// A Binding request with hop's comprehension-optional attribute
// RESPOND-AFTER (AttrRespondAfter, 0xC0D0: 4 bytes, big-endian
// milliseconds, 1 to MaxRespondAfter) is answered once, after that long,
// with the response it would have got at once: how hopc learns how long its
// NAT keeps an idle UDP mapping (RFC 5780 §4.6; package nat,
// LifetimeProber). A malformed RESPOND-AFTER gets 400 at once, as does one
// over TCP. Config.MaxDelayed and Config.MaxDelayedPerIP cap the answers
// waiting, in total and per source IP (defaults 1024 and 16); a request
// beyond a cap gets error 486 at once. Close drops the answers still
// waiting.
//
// # Amplification
//
// One request gives at most one response, never longer than the request:
// a request shorter than the answer it would get is dropped, unanswered.
// Answers are at most about 100 bytes for IPv4 (about 150 for IPv6)
// whatever the request holds; a 420 lists at most eight attribute types.
// hop's client pads every Binding request with a PADDING attribute to
// nat.RequestSize (128) bytes, which covers every answer. Requests from
// port 0 or an unspecified address are dropped. Config.PerIPPerSecond caps
// the answers per second to one source IP (a token bucket per IP, at most
// 4096 IPs remembered; the rest share one bucket).
//
// # Lifetime
//
// Listen binds every socket and starts one reader goroutine per socket;
// there is no separate Serve. Close closes the sockets and waits for the
// goroutines; it is safe to call more than once. Done is closed when the
// server stops, by Close or because a socket failed; Err says why.
package stunserver
