package netlab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// AttachDelayed is Attach with a delay line on the link: every frame
// between the host and the network waits delay, in each direction, so a
// round trip between two hosts attached this way gains 4×delay. It is for
// tests that need a path with a round-trip time (such as TCP against KCP
// under loss), since netem is not in every kernel.
//
// The delay line is a userspace forwarder run by the test process in the
// network's namespace: the host's veth ends there on its own, a second veth
// pair joins the bridge, and two AF_PACKET sockets (with virtio-net headers,
// so that GSO frames and partial checksums pass unchanged) carry frames
// between the two in order, each sent delay after it was read. Nothing is
// lost on purpose; beyond 4096 frames waiting in one direction new ones are
// dropped, as a router's queue would. It stops when the test ends. It fails
// the test on error.
func (h *Host) AttachDelayed(n *Network, addr string, delay time.Duration) string {
	h.lab.tb.Helper()
	if delay <= 0 {
		h.lab.fatal(fmt.Errorf("netlab: AttachDelayed %s to %s: delay %v, want > 0", h.name, n.name, delay))
	}
	ifname, err := h.attachLink(n, addr, delay)
	h.lab.fatal(err)
	return ifname
}

// delayQueue bounds the frames waiting in one direction of a delay line.
const delayQueue = 4096

type delayedFrame struct {
	at time.Time
	b  []byte
}

// startDelayLine forwards frames both ways between devices a and b of
// network n's namespace, each after d. It stops on the test's cleanup.
func (l *Lab) startDelayLine(n *Network, a, b string, d time.Duration) error {
	var fa, fb *os.File
	err := l.doIn(n.ns, n.name, func() (err error) {
		if fa, err = packetSocket(a); err != nil {
			return err
		}
		if fb, err = packetSocket(b); err != nil {
			fa.Close()
		}
		return err
	})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(4)
	for _, dir := range [][2]*os.File{{fa, fb}, {fb, fa}} {
		q := make(chan delayedFrame, delayQueue)
		go func() { // reader
			defer wg.Done()
			defer close(q)
			buf := make([]byte, 1<<17)
			for failures := 0; ; {
				k, err := dir[0].Read(buf)
				if err != nil {
					if failures++; failures > 100 || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENXIO) {
						return
					}
					continue // a frame the kernel could not describe, for example
				}
				failures = 0
				select {
				case q <- delayedFrame{at: time.Now().Add(d), b: append([]byte(nil), buf[:k]...)}:
				default: // the queue is full: tail drop
				}
			}
		}()
		go func() { // writer
			defer wg.Done()
			for f := range q {
				if w := time.Until(f.at); w > 0 {
					time.Sleep(w) // the delay under emulation
				}
				dir[1].Write(f.b) // a frame the device refuses is lost, as on a wire
			}
		}()
	}
	l.tb.Cleanup(func() {
		fa.Close()
		fb.Close()
		wg.Wait()
	})
	return nil
}

// packetSocket opens a non-blocking AF_PACKET socket on dev, in the
// calling thread's namespace, that sees every frame arriving on dev (not
// those it sends), each preceded by a virtio-net header, and sends frames
// given the same way.
func packetSocket(dev string) (*os.File, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, fmt.Errorf("netlab: delay line on %s: %w", dev, err)
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("netlab: delay line on %s: packet socket: %w", dev, err)
	}
	for _, o := range []struct {
		level, opt, v int
	}{
		{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1},
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8 << 20},
		{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8 << 20},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("netlab: delay line on %s: setsockopt %d/%d: %w", dev, o.level, o.opt, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlab: delay line on %s: bind: %w", dev, err)
	}
	return os.NewFile(uintptr(fd), "packet:"+dev), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
