//go:build unix

package fdlimit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func get() (Limit, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return Limit{}, fmt.Errorf("read the file descriptor limit (RLIMIT_NOFILE): %w", err)
	}
	return Limit{Soft: uint64(r.Cur), Hard: uint64(r.Max)}, nil
}

func raise() (Limit, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return Limit{}, fmt.Errorf("read the file descriptor limit (RLIMIT_NOFILE): %w", err)
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			// macOS refuses an unlimited hard limit here; keep the soft one.
			return Limit{Soft: uint64(r.Cur), Hard: uint64(r.Max)},
				fmt.Errorf("raise the soft file descriptor limit from %d to the hard limit %d: %w", r.Cur, r.Max, err)
		}
	}
	return get()
}
