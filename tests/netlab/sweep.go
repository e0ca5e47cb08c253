package netlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"

	"golang.org/x/sys/unix"
)

// leftoverRE matches lab namespace names and captures the creator PID.
var leftoverRE = regexp.MustCompile(`^` + stem + `([0-9]+)x[0-9a-f]{6}-`)

// Sweep removes what labs of crashed earlier runs left behind: namespaces
// named "hl<pid>x<hex>-…" and blackhole routes with protocol 104 whose
// creator PID no longer runs. A namespace that still holds processes is left
// alone. New calls Sweep; it is exported for a TestMain or a CI step.
//
// A PID that was reused by an unrelated process keeps its leftovers alive
// until that process ends; that errs on the side of touching nothing live.
func Sweep() error {
	var errs []error
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		m := leftoverRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pidAlive(pid) {
			continue
		}
		out, err := run(nil, "ip", "netns", "pids", e.Name())
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			continue // processes still inside (or unknown): not ours to end
		}
		if _, err := run(nil, "ip", "netns", "del", e.Name()); err != nil && nsExists(e.Name()) {
			errs = append(errs, err)
		}
	}

	out, err := run(nil, "ip", "-j", "route", "show", "type", "blackhole", "proto", routeProto)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var routes []struct {
		Dst    string `json:"dst"`
		Metric uint32 `json:"metric"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return errors.Join(append(errs, fmt.Errorf("netlab: parsing ip -j route: %w", err))...)
	}
	for _, r := range routes {
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			continue // "default" or a host route: never ours
		}
		if pid := int(r.Metric >> 10); pid == 0 || pidAlive(pid) {
			continue
		}
		if err := delRoute(p, r.Metric); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pidAlive reports whether a process with this PID exists.
func pidAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
