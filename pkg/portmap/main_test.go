package portmap

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that every Client's Close waited for its goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
