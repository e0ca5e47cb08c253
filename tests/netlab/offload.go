package netlab

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DisableOffloads turns off every offload of the host's interface ifname
// that can be changed (TSO, GSO, UDP segmentation, checksum offload,
// scatter-gather, GRO, …), as "ethtool -K ifname … off" would, so that the
// host hands the network one wire-sized packet at a time. A NAT's loss
// rule (NATConfig.LossPercent) decides per packet as the kernel sees it,
// and a TSO or GSO packet of up to 64 KB is one packet to it: turn
// offloads off on the senders for loss per wire packet. It fails the test
// on error.
func (h *Host) DisableOffloads(ifname string) {
	h.lab.tb.Helper()
	h.lab.fatal(h.Do(func() error { return disableOffloads(ifname) }))
}

// Feature words of ETHTOOL_GFEATURES/SFEATURES: netdev_features_t is 64
// bits.
const featureWords = 2

type ifreqPtr struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of struct ifreq's union
}

type gfeatures struct {
	cmd, size uint32
	blocks    [featureWords]struct{ available, requested, active, neverChanged uint32 }
}

type sfeatures struct {
	cmd, size uint32
	blocks    [featureWords]struct{ valid, requested uint32 }
}

func ethtool(fd int, ifname string, data unsafe.Pointer) error {
	var ifr ifreqPtr
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = data
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return errno
	}
	return nil
}

func disableOffloads(ifname string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netlab: offloads of %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	g := gfeatures{cmd: unix.ETHTOOL_GFEATURES, size: featureWords}
	if err := ethtool(fd, ifname, unsafe.Pointer(&g)); err != nil {
		return fmt.Errorf("netlab: reading the offloads of %s: %w", ifname, err)
	}
	s := sfeatures{cmd: unix.ETHTOOL_SFEATURES, size: featureWords}
	for i := range featureWords {
		s.blocks[i].valid = g.blocks[i].available // every changeable feature, to off
	}
	if err := ethtool(fd, ifname, unsafe.Pointer(&s)); err != nil {
		return fmt.Errorf("netlab: turning off the offloads of %s: %w", ifname, err)
	}
	g = gfeatures{cmd: unix.ETHTOOL_GFEATURES, size: featureWords}
	if err := ethtool(fd, ifname, unsafe.Pointer(&g)); err != nil {
		return fmt.Errorf("netlab: reading the offloads of %s: %w", ifname, err)
	}
	for i := range featureWords {
		if on := g.blocks[i].active & g.blocks[i].available; on != 0 {
			return fmt.Errorf("netlab: offloads of %s still on after turning them off: word %d %#x", ifname, i, on)
		}
	}
	return nil
}
