// Package portmap opens ports on the home gateway so that peers can reach
// this host directly: PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD
// (WANIPConnection:2, WANIPConnection:1, WANPPPConnection:1). It is a
// self-contained subsystem with a narrow API:
//
//	c, err := portmap.New(portmap.Config{Logger: log})
//	m, err := c.Map(ctx, "udp", 7000) // m.External, m.Method, m.Lifetime
//	p := c.Probe(ctx)                 // which protocols answered, external address
//	defer c.Close()                   // deletes the mappings
//
// # Gateway and protocols
//
// The gateway is Config.Gateway, or the gateway of the IPv4 default route
// (DefaultGateway reads /proc/net/route). Nothing is sent anywhere else:
// PCP and NAT-PMP go to the gateway's UDP port 5351; UPnP multicasts an
// SSDP M-SEARCH on the local link and accepts only answers from the gateway
// whose LOCATION points at the gateway; every HTTP request of UPnP is dialled
// to the gateway only, without proxy or redirect.
//
// Map tries Config.Methods in order, by default PCP, then NAT-PMP, then
// UPnP, and keeps the first that works; once one has worked, later
// mappings try it first (until the gateway is discovered again), so that a
// UPnP-only gateway does not cost a PCP and a NAT-PMP exchange per mapping:
//
//   - PCP first: it renews by nonce, reports the server epoch, and has PEER,
//     which keeps the gateway's mapping of an existing (hole-punched) flow
//     alive for a chosen lifetime (Client.Peer).
//   - NAT-PMP on the same port: a NAT-PMP-only gateway answers a PCP request
//     with version 0 (RFC 6887 section 9), which moves on to NAT-PMP at once.
//   - UPnP IGD last, because it costs SSDP plus HTTP/SOAP round trips. The
//     SSDP search asks for InternetGatewayDevice:2 and, only once that
//     search has ended without an answer, for InternetGatewayDevice:1: some
//     routers (FritzBox) answer neither when asked both at once (go-libp2p
//     issue 3138). Rediscovery after a failed renewal goes through both
//     versions again. In the device found, WANIPConnection:2 is used if
//     present (AddAnyPortMapping lets the gateway pick a free port), else
//     WANIPConnection:1, else WANPPPConnection:1. A gateway that only allows
//     permanent leases (error 725) gets lease 0; such mappings are still
//     re-added at half of Config.Lifetime to notice a restarted gateway.
//
// Every network step has a deadline (Config.Timeout): one PCP or NAT-PMP
// exchange, retransmitted from 250 ms doubling; one SSDP search; one HTTP
// request. When nothing answers, Map returns an error wrapping ErrNoGateway
// and the Client logs once
//
//	no port-mapping gateway: UPnP, NAT-PMP and PCP unanswered
//
// then retries in the background with backoff (Config.RetryMin doubling to
// RetryMax, with jitter), logging later failures only at debug level until a
// gateway answers again. The request stays registered: OnChange reports the
// mapping once it is made. A Probe that gets no answer at all logs the same
// line, under the same once-only rule.
//
// # Renewal
//
// A mapping is renewed at half the lifetime the gateway granted, with the
// same method (the same PCP nonce and suggested external address, the same
// NAT-PMP external port, or the same UPnP external port). When a renewal
// fails (the router restarted, the UPnP control URL moved: go-libp2p issue
// 3224), the Client forgets the gateway, discovers it again (all methods,
// both IGD versions) and re-creates every mapping. The same happens when a
// PCP or NAT-PMP response shows that the server's epoch went back (RFC 6887
// section 8.5, RFC 6886 section 3.6): the gateway lost its state, so every
// mapping is re-created at once, not at its next renewal. A new mapping
// whose request fails at the IGD found earlier (connection refused, HTTP
// 404: a restarted miniupnpd listens on a new HTTP port) searches the
// gateway again, and when the IGD found then accepts it, the other
// mappings are re-created at once too. Each change is reported to
// Config.OnChange and logged ("port mapping created", or "port mapping
// re-created" when the gateway gave the same external port back). Close deletes every mapping (lifetime 0 for
// PCP and NAT-PMP, DeletePortMapping for UPnP) and waits for the goroutine.
//
// # Libraries and what is written here
//
// UPnP SOAP uses github.com/huin/goupnp (its generated WANIPConnection2/1
// and WANPPPConnection1 clients) with an HTTP client of this package; SSDP is
// done here so that it can be serial, bounded and restricted to the gateway,
// and runs over Config.Net. PCP is written here: there is no maintained Go
// PCP library. NAT-PMP is written here too, sharing PCP's transport:
// github.com/jackpal/go-nat-pmp dials its own sockets (no way to pass a
// namespace-bound or fake network), takes no context and always uses port
// 5351, which a test cannot fake on loopback. Every decoder of gateway bytes
// (PCP, NAT-PMP, SSDP) has a fuzz target.
//
// Not done: IPv6 (the gateway and mappings are IPv4); listening for the
// unsolicited PCP ANNOUNCE a restarted server multicasts (RFC 6887 section
// 14.1; the epoch check at the next renewal finds the restart instead);
// PCP THIRD_PARTY, PREFER_FAILURE and FILTER options.
package portmap
