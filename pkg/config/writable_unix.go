//go:build unix

package config

import "golang.org/x/sys/unix"

// writable reports whether this process may write to path (a file, or a
// directory to create a file in), as access(2) with W_OK says. It also
// reports a read-only file system.
func writable(path string) bool {
	return unix.Access(path, unix.W_OK) == nil
}
