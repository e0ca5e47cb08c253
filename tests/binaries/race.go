//go:build race

package binaries

// Race is true when the code is built with -race: the binaries are too.
const Race = true
