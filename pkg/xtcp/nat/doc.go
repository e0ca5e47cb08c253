// Package nat discovers, from one UDP socket, the public address of that
// socket and how the NAT in front of it behaves (RFC 4787 terms, RFC 5780
// tests), by talking to a STUN server such as hops' (package stunserver).
// It is what "hopc nat" prints and what P2P uses to pick candidates.
//
// # Tests
//
// Discover runs, from the caller's socket, in this order:
//
//  1. A Binding request to the server: the public (mapped) address, and
//     whether the NAT kept the local port. The answer also gives the
//     server's OTHER-ADDRESS, its alternate endpoint. Without an answer
//     Discover fails.
//  2. Filtering (§4.4), before anything is sent to the alternate endpoints
//     so that the NAT has no reason yet to let them in: a Binding request
//     to the server with CHANGE-REQUEST "change IP and port" (only if the
//     alternate endpoint has another IP); if it is answered from there the
//     filtering is endpoint-independent. Otherwise "change port" (only if
//     it has another port): answered means address-dependent, silence
//     address-and-port-dependent.
//  3. Mapping (§4.3): Binding requests to the server's address with the
//     alternate port, to the alternate address with the server's port,
//     and to the alternate endpoint, those that exist. The same public
//     endpoint everywhere means endpoint-independent mapping; a new one
//     only when the address changes, address-dependent; a new one when
//     only the port changes, address-and-port-dependent. The public ports
//     in order give Report.Deltas.
//
// # Loss
//
// Every request is retransmitted as RFC 8489 §6.2.1 says, shortened: sent,
// then sent again after Options.Interval (the RTO), again after twice as
// long and so on, Options.Tries sends in all (defaults 4 and 100 ms: sends
// at 0, 0.1, 0.3 and 0.7 s, silent at 1.5 s). Every send repeats the
// transaction ID, so an answer to any of them counts. A test answered
// returns at once; with 10 % loss each way a test stays unanswered after
// four sends about once in 800 (0.19⁴).
//
// Nothing is concluded from an answer that did not arrive:
//
//   - An unanswered mapping probe is left out. A behaviour that needs the
//     missing probe to be told apart from another is Unknown, with a note
//     saying what the answers did show ("at least address-dependent").
//     Only where the server cannot run a test at all (no alternate address
//     or port) does Discover assume, as said below.
//   - A filtering test expects silence behind a filtering NAT, so silence
//     must be told apart from loss. Each CHANGE-REQUEST is sent together
//     with a control, a plain Binding request to the same server endpoint,
//     on the same schedule (the control only until it is answered). The
//     CHANGE-REQUEST's silence counts as "filtered" only if the control
//     was answered in the same window, so the path was up while the answer
//     should have come, and if the endpoint that should have answered
//     answered a plain request in step 3, so it exists. A silence without
//     an answered control is "lost": the filtering is Unknown (or, when
//     the port test was answered, address-dependent with a note that it
//     could also be endpoint-independent). With independent loss a real
//     answer is still missed when all Tries sends of it are lost (the
//     chance above); the filtering then reads one step stricter, never
//     looser.
//
// Responses are matched by transaction ID; one that answers a
// CHANGE-REQUEST from the address and port it was sent to proves nothing.
//
// The class string (Classify, "EIM/APDF") writes Unknown as "?": "?M/APDF",
// "EIM/?F". P2P peers send it in P2POffer and P2PAnswer and the server
// tallies it (docs/PROTOCOL.md), so an inconclusive run is reported as such
// rather than as a guess.
//
// Only what could be tested is claimed, and the Report's notes say what
// was not:
//
//   - A server without OTHER-ADDRESS: mapping and filtering Unknown.
//   - A server with an alternate port but no alternate address (hops
//     without AltAddr): a mapping that stays the same across ports is
//     reported EndpointIndependent with a note (an address-dependent NAT
//     would look the same, and such NATs are rare); a filtering that lets
//     the other port in is reported AddressDependent with a note (it could
//     also be endpoint-independent, which cannot be told apart without a
//     second address). The first is the likely reading, the second the
//     safe one for P2P: it only means sending first.
//   - Where the server's endpoints cannot separate address-dependent from
//     address-and-port-dependent (an alternate address but no alternate
//     port), the stricter is reported, with a note.
//
// The filtering result depends on what the socket sent recently: a socket
// that talked to the server's alternate endpoints less than a NAT timeout
// ago has opened the way for them. Run Discover on a fresh socket, or wait.
//
// # OTHER-ADDRESS
//
// The server describes its alternate endpoint as it sees itself. An
// unspecified IP, or the IP it also gives as RESPONSE-ORIGIN (as a server
// behind a 1:1 NAT reports its private address), is read as "the address
// you sent the request to"; any other IP is used as is. hop's stunserver
// sends the alternate port with the request's destination IP when it has no
// alternate address, and the alternate address and port when it has one.
//
// No STUN server address is built in: the caller always names the server.
//
// # Mapping lifetime
//
// LifetimeProber (lifetime.go) answers a different question, how long the
// NAT keeps an idle UDP mapping (RFC 5780 §4.6), for P2P keepalive "auto"
// (package idletimeout drives it): from a fresh socket it sends one
// Binding request with hop's RESPOND-AFTER attribute, which hops'
// stunserver answers once after the requested silence; the answer arrives
// only if the mapping outlived the silence. It lives here because it is
// a STUN client of the same server, sharing the request padding and
// response parsing of Discover.
package nat
