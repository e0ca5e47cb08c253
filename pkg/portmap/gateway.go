package portmap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// routeFiles are read in order by DefaultGateway: the calling thread's
// network namespace first (a thread switched into another namespace sees
// its routes there), then the process's.
var routeFiles = []string{"/proc/thread-self/net/route", "/proc/net/route"}

// DefaultGateway returns the IPv4 gateway of the default route of the
// network namespace of the calling thread, read from /proc/net/route (Linux).
// It returns an error wrapping ErrNoDefaultRoute when there is none.
func DefaultGateway() (netip.Addr, error) {
	var lastErr error
	for _, f := range routeFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			lastErr = err
			continue
		}
		return parseRouteTable(b)
	}
	return netip.Addr{}, fmt.Errorf("%w: reading the routing table: %v", ErrNoDefaultRoute, lastErr)
}

// Flags of /proc/net/route (linux/route.h).
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// parseRouteTable finds the default route's gateway in the text of
// /proc/net/route: a header line, then one route a line with the fields
// Iface Destination Gateway Flags RefCnt Use Metric Mask …, addresses as
// 8 hex digits of the address read as a host-order number. The route
// with the lowest metric wins.
func parseRouteTable(b []byte) (netip.Addr, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		gw, err := strconv.ParseUint(f[2], 16, 32)
		if err != nil || len(f[2]) != 8 {
			continue
		}
		// The kernel prints the big-endian address as a host-order
		// number: its bytes in memory are the address.
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(gw))
		metric, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = netip.AddrFrom4(a), metric
		}
	}
	if !best.IsValid() {
		return netip.Addr{}, fmt.Errorf("%w in /proc/net/route", ErrNoDefaultRoute)
	}
	return best, nil
}
