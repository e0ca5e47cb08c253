package xtcp

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// PunchMany is the hard side of a birthday punch, for a peer behind a NAT
// that keeps one mapping for every destination while ours picks a new
// random port for each: every socket sends probes to the peer's
// candidates, so our NAT opens one mapping per socket towards the peer,
// and the peer sprays probes at random ports of our public address
// (PunchConfig.SprayPorts). A probe that hits one of our mappings reaches
// its socket, and the round trip completes there. With k sockets and m
// sprayed probes over the 64,512 ports a NAT allocates from, a hit is
// likely once k·m is a few times 64,512 (k = 384, m = 1200: 99.9%).
//
// cfg applies to each socket (MaxPackets and MaxRate are per socket); the
// sockets start spread evenly over spread after cfg.StartAt, which bounds
// the burst. PunchMany owns conns: it returns the winner's socket, open,
// and closes all others (all of them on failure).
func PunchMany(ctx context.Context, conns []*net.UDPConn, cfg PunchConfig, spread time.Duration) (*PunchResult, *net.UDPConn, error) {
	if len(conns) == 0 {
		return nil, nil, errors.New("xtcp: punch many: no sockets")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		i   int
		res *PunchResult
		err error
	}
	out := make(chan outcome, len(conns))
	var wg sync.WaitGroup
	base := cfg.StartAt
	if base.IsZero() {
		base = time.Now()
	}
	for i, c := range conns {
		c := c
		pc := cfg
		pc.StartAt = base.Add(spread * time.Duration(i) / time.Duration(len(conns)))
		pc.Logger = nil // one line for the whole attempt, below
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Punch(ctx, c, pc)
			out <- outcome{i, res, err}
		}()
	}
	var win *outcome
	var errs []error
	sent := 0
	for range conns {
		o := <-out
		if o.err == nil && win == nil {
			win = &o
			cancel() // the others stop
			continue
		}
		if o.res != nil {
			sent += o.res.PacketsSent
		}
		var pe *PunchError
		if errors.As(o.err, &pe) {
			sent += pe.PacketsSent
		}
		errs = append(errs, o.err)
	}
	wg.Wait()
	for i, c := range conns {
		if win == nil || i != win.i {
			c.Close()
		}
	}
	log := cfg.Logger
	if win != nil {
		win.res.PacketsSent += sent
		if log != nil {
			log.Info("p2p birthday punch succeeded", "role", cfg.Role, "session", cfg.SessionID, "sockets", len(conns),
				"winner", win.i, "peer", win.res.Remote, "packets", win.res.PacketsSent)
		}
		return win.res, conns[win.i], nil
	}
	// Report the first socket's failure, with the packets of all.
	var pe *PunchError
	if errors.As(errs[0], &pe) {
		e := *pe
		e.PacketsSent = sent
		if log != nil {
			log.Info("p2p birthday punch failed", "role", cfg.Role, "session", cfg.SessionID, "sockets", len(conns), "err", &e)
		}
		return nil, nil, &e
	}
	return nil, nil, errs[0]
}
