//go:build !unix

package fdlimit

import "errors"

var errUnsupported = errors.New("file descriptor limits (RLIMIT_NOFILE) are not supported on this system")

func get() (Limit, error)   { return Limit{}, errUnsupported }
func raise() (Limit, error) { return Limit{}, errUnsupported }
