//go:build race

package e2e

// raceEnabled builds the binaries under test with -race when the test
// binary itself has it.
const raceEnabled = true
