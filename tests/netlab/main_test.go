package netlab

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that labs reap every process and the tests stop every
// goroutine they start.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
