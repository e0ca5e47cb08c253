package client

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/xtcp/nat"
)

// PrintNAT runs NAT behaviour discovery against the server's STUN responder
// (UDP on serverAddr:serverPort) from a fresh socket and prints what it
// found and what it means for P2P, for `hopc nat`.
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
		return fmt.Errorf("NAT discovery against %s (UDP): %w; is hops running there, and is UDP port %d open to it?", server, err, cfg.ServerPort)
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
	return nil
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
