package plugin

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every
// handler's Close must wait for what it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
