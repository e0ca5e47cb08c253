package tcppunch

import (
	"testing"

	"go.uber.org/goleak"
)

// kcp-go (imported through pkg/xtcp) starts its timer goroutines at init
// and keeps them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"))
}
