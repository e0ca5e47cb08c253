// Package netlab builds small networks of Linux network namespaces joined by
// bridges, with real nftables NAT routers between them, for end-to-end tests
// of keepalives behind NATs and of UDP hole punching across a NAT matrix.
//
// A lab is made of:
//
//   - Networks: each one is a namespace that holds a single bridge (br0),
//     one L2 segment with a caller-chosen IPv4 CIDR.
//   - Hosts: each one is a namespace with lo up. Host.Attach plugs a veth
//     into a network's bridge and gives it an address in that network.
//   - NATs: hosts with one leg on a WAN network and one on a LAN network,
//     ip_forward on, and an nftables ruleset that masquerades LAN→WAN,
//     forwards only LAN→WAN plus established/related replies, and silently
//     drops unsolicited packets arriving on the WAN leg, like a home router.
//     NATConfig.DropUDP makes one drop all forwarded UDP, both ways, like a
//     network that blocks UDP (TCP still passes).
//     NATConfig.LossPercent makes one drop that share of what it forwards,
//     at random, both ways (nft numgen; netem is not in every kernel).
//   - Impairments without netem: Host.AttachDelayed puts a delay line (a
//     forwarder in the test process) on a host's link, and
//     Host.DisableOffloads makes a host send wire-sized packets, so that
//     a NAT's loss hits each of them rather than a 64 KB TSO/GSO packet.
//
// Example:
//
//	lab := netlab.New(t) // skips unless root with ip and nft; cleans up on t.Cleanup
//	wan := lab.Network("wan", "198.51.100.0/24")
//	lan := lab.Network("lan1", "10.1.0.0/24")
//	srv := lab.Host("srv")
//	srv.Attach(wan, "198.51.100.10")
//	nat := lab.NAT("nat1", wan, "198.51.100.21", lan, "10.1.0.1", netlab.NATConfig{
//		Mode:       netlab.PortPreserving,
//		UDPTimeout: 5 * time.Second,
//	})
//	c1 := lab.Host("c1")
//	c1.Attach(lan, "10.1.0.10")
//	c1.DefaultRoute("10.1.0.1")
//	var conn net.PacketConn
//	err := c1.Do(func() (err error) { // the socket lives in c1's namespace
//		conn, err = net.ListenPacket("udp4", ":0")
//		return err
//	})
//	p, err := srv.Start(ctx, "/path/to/hops", "-c", cfg) // killed on Close
//
// # Errors
//
// Setup methods (Lab.Network, Lab.Host, Lab.NAT, Host.Attach,
// Host.DefaultRoute, Host.Sysctl) fail the test given to New with Fatal, so
// they must be called from that test's goroutine: build the topology before
// starting subtests or goroutines. Methods used while the test runs
// (Host.Start, Host.StartCmd, Host.Run, Host.Do, NAT.Conntrack) return errors
// and may be called from any goroutine.
//
// # Isolation and cleanup
//
// Nothing in a lab is connected to the root namespace: veth pairs are created
// directly between lab namespaces. As a second guard, every network CIDR gets
// a blackhole route in the root namespace for the lab's lifetime, and an
// attached address that the root namespace would still route somewhere (for
// example because a more specific real route exists) is refused.
//
// Every namespace is named Prefix()+name, where the prefix is
// "hl<creator pid>x<6 random hex>-". The blackhole routes are tagged with
// protocol 104 and a metric of pid<<10|seq, so they too name their creator.
// Lab.Close (registered with t.Cleanup, idempotent) kills the processes the
// lab started, by PID, deletes the namespaces and removes the routes. Sweep
// (called by New) removes namespaces and routes whose creator PID no longer
// runs, left behind by a test binary that was killed.
//
// # Requirements
//
// Root, iproute2 (ip) and nftables (nft). When something is missing New skips
// the test, unless HOP_REQUIRE_NETLAB=1 is set, in which case it fails it.
//
// # NAT behaviour (measured by the package tests on Linux 6.18, nft 1.0.6)
//
//   - PortPreserving (nft "masquerade"): the source port is kept when the
//     resulting tuple is free, so one socket keeps one external ip:port for
//     every destination (endpoint-independent mapping), also after the
//     mapping expired and was made again. A second LAN host using the same
//     source port towards the same destination gets another port. Inbound
//     packets pass only from the exact ip:port the mapping was made towards
//     (address-and-port-dependent filtering).
//   - RandomPort (nft "masquerade random") and FullyRandomPort (nft
//     "masquerade fully-random") behave the same on 6.18: the source port
//     is never kept and every new conntrack entry draws a random port, so
//     one socket gets a different external port per destination ip:port
//     (a "symmetric" NAT), and a new one again towards the same destination
//     once the old mapping expired. Old kernels (3.x/4.x) computed "random"
//     as a keyed hash of the addresses and destination port, which is still
//     per destination but repeats for the same one; "fully-random" has
//     always drawn a random number.
//   - After a TCP mapping expires, TCPLoose decides: with false the next
//     mid-stream packet is invalid and the connection is dead (dropped with
//     DropInvalid, otherwise forwarded un-NATed and lost); with true (the
//     kernel default) conntrack picks the connection up again from the next
//     LAN packet and it survives if the client speaks first. Packets from
//     the WAN side never revive a mapping.
//
// The conntrack timeouts of NATConfig are per-namespace sysctls
// (net.netfilter.nf_conntrack_*), so every NAT can have its own.
package netlab
