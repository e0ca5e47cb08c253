// Command relay is the benchmark's floor: a plain TCP forwarder with no
// encryption and no multiplexing. Two of them in a chain (user → relay →
// relay → service) cross the same processes and loopback hops as hops and
// hopc do, so their figures show what any two-process proxy costs on the
// machine at hand.
//
//	relay -c FILE   FILE has one "listen-addr target-addr" pair per line
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) != 2 || args[0] != "-c" {
		return errors.New("usage: relay -c FILE")
	}
	f, err := os.Open(args[1])
	if err != nil {
		return err
	}
	defer f.Close()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return fmt.Errorf("line %q: want \"listen-addr target-addr\"", sc.Text())
		}
		l, err := net.Listen("tcp", fields[0])
		if err != nil {
			return err
		}
		lns = append(lns, l)
		go serve(l, fields[1])
	}
	if err := sc.Err(); err != nil {
		return err
	}
	<-ctx.Done() // open connections end with the process
	return nil
}

func serve(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer d.Close()
			// The first direction to end closes both: the floor needs no
			// half-close, and nothing outlives its user.
			done := make(chan struct{}, 2)
			go func() { io.Copy(d, c); done <- struct{}{} }()
			go func() { io.Copy(c, d); done <- struct{}{} }()
			<-done
		}()
	}
}
