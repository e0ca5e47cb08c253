package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/portmap"
	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

// PrintNAT runs NAT behaviour discovery against the server's STUN responder
// (UDP on serverAddr:serverPort) from a fresh socket and prints what it
// found and what it means for P2P, for `hopc nat`. With p2p.portMapping on
// it then asks the gateway which port-mapping protocols it answers, maps
// the STUN socket's UDP port as a test, prints the mapping and deletes it.
func PrintNAT(ctx context.Context, cfg *config.ClientConfig, w io.Writer) error {
	c := &Client{cfg: cfg}
	server, err := c.stunServer(ctx)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return err
	}
	defer conn.Close()
	rep, err := nat.Discover(ctx, conn, server, nat.Options{})
	if err != nil {
		return fmt.Errorf("NAT discovery against %s (UDP): %w; is hops running there, and is UDP port %d open to it?", server, err, server.Port())
	}
	fmt.Fprintf(w, "server (STUN):      %v", rep.Server)
	if rep.Other.IsValid() {
		fmt.Fprintf(w, ", alternate %v", rep.Other)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "local address:      %v\n", rep.LocalAddr)
	fmt.Fprintf(w, "public address:     %v\n", rep.Mapped)
	fmt.Fprintf(w, "behind a NAT:       %v\n", yesNo(rep.Behind()))
	fmt.Fprintf(w, "port preserved:     %v\n", yesNo(rep.PortPreserved))
	fmt.Fprintf(w, "mapping:            %v%s\n", rep.Mapping, note(rep.MappingNote))
	fmt.Fprintf(w, "filtering:          %v%s\n", rep.Filtering, note(rep.FilteringNote))
	fmt.Fprintf(w, "class:              %s\n", rep.Class())
	if len(rep.Deltas) > 0 {
		fmt.Fprintf(w, "port deltas:        %v\n", rep.Deltas)
	}
	fmt.Fprintf(w, "\n%s\n", rep.Explain())
	if !cfg.P2P.PortMapping {
		fmt.Fprintf(w, "\nport mapping:       off (p2p.portMapping = false)\n")
		return nil
	}
	pm, err := portmap.New(portmap.Config{Logger: slog.New(slog.DiscardHandler), Lifetime: natTestLifetime})
	if err != nil {
		return err
	}
	defer pm.Close()
	printPortMapping(ctx, w, pm, uint16(conn.LocalAddr().(*net.UDPAddr).Port), rep.Mapped.Addr())
	return nil
}

// natTestLifetime is the lifetime hopc nat asks for its test mapping
// (deleted at once; this bounds it if hopc nat is killed meanwhile).
const natTestLifetime = 2 * time.Minute

// portProber is what hopc nat needs of a portmap.Client.
type portProber interface {
	Probe(ctx context.Context) portmap.ProbeResult
	Map(ctx context.Context, proto string, internalPort uint16) (portmap.Mapping, error)
	Unmap(ctx context.Context, proto string, internalPort uint16, remote netip.AddrPort) error
}

// printPortMapping reports which port-mapping protocols the gateway
// answered and the external address it reports, then maps port (UDP) as
// a test, prints the mapping (and the mapped port on public, the address
// hops saw, when the gateway reports another), and deletes it.
func printPortMapping(ctx context.Context, w io.Writer, pm portProber, port uint16, public netip.Addr) {
	p := pm.Probe(ctx)
	fmt.Fprintf(w, "\nport mapping (gateway %v):\n", gatewayText(p.Gateway))
	answered := func(ok bool, detail string, err error) string {
		if ok {
			return "yes" + note(detail)
		}
		// errors.Join puts one error a line: keep the report one line
		// per protocol.
		return "no" + note(strings.ReplaceAll(fmt.Sprint(err), "\n", "; "))
	}
	fmt.Fprintf(w, "  PCP:              %s\n", answered(p.PCP, "", p.PCPErr))
	fmt.Fprintf(w, "  NAT-PMP:          %s\n", answered(p.NATPMP, "", p.NATPMPErr))
	fmt.Fprintf(w, "  UPnP IGD:         %s\n", answered(p.UPnP, p.Service, p.UPnPErr))
	fmt.Fprintf(w, "  answered:         %s\n", answeredList(p))
	if !p.PCP && !p.NATPMP && !p.UPnP {
		fmt.Fprintf(w, "\nNo gateway answers port-mapping requests: P2P uses the other candidates.\n")
		return
	}
	if p.External.IsValid() {
		ext := p.External.String()
		if public.IsValid() && public != p.External {
			ext += fmt.Sprintf(" (hops sees %v: the gateway is behind another NAT, or reports a reserved address)", public)
		}
		fmt.Fprintf(w, "  external address: %s\n", ext)
	}
	m, err := pm.Map(ctx, "udp", port)
	if err != nil {
		fmt.Fprintf(w, "  test mapping:     failed: %v\n", err)
		pm.Unmap(ctx, "udp", port, netip.AddrPort{}) // stop the background retries
		return
	}
	lifetime := m.Lifetime.String()
	if m.Lifetime == 0 {
		lifetime = "permanent lease (renewed while in use)"
	}
	fmt.Fprintf(w, "  test mapping:     udp %d -> %v via %s, lifetime %s\n", port, m.External, methodName(m.Method), lifetime)
	if public.IsValid() && public != m.External.Addr() {
		fmt.Fprintf(w, "  also offered at:  %v\n", netip.AddrPortFrom(public, m.External.Port()))
	}
	if err := pm.Unmap(ctx, "udp", port, netip.AddrPort{}); err != nil {
		fmt.Fprintf(w, "  test mapping deleted: no: %v\n", err)
		return
	}
	fmt.Fprintf(w, "  test mapping deleted: yes\n")
}

// answeredList names the protocols the gateway answered, in the order
// hopc tries them, or says that none did.
func answeredList(p portmap.ProbeResult) string {
	var names []string
	for _, m := range []struct {
		ok     bool
		method portmap.Method
	}{{p.PCP, portmap.MethodPCP}, {p.NATPMP, portmap.MethodNATPMP}, {p.UPnP, portmap.MethodUPnP}} {
		if m.ok {
			names = append(names, methodName(m.method))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func gatewayText(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

func methodName(m portmap.Method) string {
	switch m {
	case portmap.MethodPCP:
		return "PCP"
	case portmap.MethodNATPMP:
		return "NAT-PMP"
	case portmap.MethodUPnP:
		return "UPnP IGD"
	}
	return string(m)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func note(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
