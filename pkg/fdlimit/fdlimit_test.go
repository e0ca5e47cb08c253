//go:build unix

package fdlimit

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaise lowers the soft limit below the hard one, as a shell's
// `ulimit -Sn` would, and checks that Raise brings it back up.
func TestRaise(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	if orig.Max < 256 {
		t.Skipf("hard limit %d is too low to lower the soft one below it", orig.Max)
	}
	low := orig
	low.Cur = 200
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	if l, err := Get(); err != nil || l.Soft != 200 || l.Hard != uint64(orig.Max) {
		t.Fatalf("Get() after lowering = %+v, %v; want soft 200 hard %d", l, err, orig.Max)
	}
	l, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	if l.Soft != uint64(orig.Max) || l.Hard != uint64(orig.Max) {
		t.Fatalf("Raise() = %+v; want soft = hard = %d", l, orig.Max)
	}
	var now unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &now)
	if now.Cur != orig.Max {
		t.Fatalf("soft limit in force after Raise: %d, want %d", now.Cur, orig.Max)
	}
	// Already at the hard limit: nothing to do, same answer.
	if l2, err := Raise(); err != nil || l2 != l {
		t.Fatalf("second Raise() = %+v, %v; want %+v", l2, err, l)
	}
}

// TestRaiseAndLog: one line with the limit in force, a warning when the
// hard limit itself is low.
func TestRaiseAndLog(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	var buf bytes.Buffer
	l := RaiseAndLog(slog.New(slog.NewTextHandler(&buf, nil)))
	want := fmt.Sprintf(`msg="file descriptor limit" soft=%d hard=%d`, orig.Max, orig.Max)
	if !strings.Contains(buf.String(), want) || strings.Count(buf.String(), "\n") != 1 || l.Soft != uint64(orig.Max) {
		t.Fatalf("logged %q (limit %+v), want one line with %q", buf.String(), l, want)
	}
	if orig.Max < lowSoft {
		return
	}
	// Lowering the hard limit cannot be undone without privileges; only
	// lower the soft one and check the warning through the threshold.
	low := orig
	low.Cur = 100
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	if l, _ := Get(); l.Soft != 100 {
		t.Fatalf("soft limit %d after lowering", l.Soft)
	}
	buf.Reset()
	RaiseAndLog(slog.New(slog.NewTextHandler(&buf, nil)))
	if !strings.Contains(buf.String(), "level=INFO") || !strings.Contains(buf.String(), fmt.Sprintf("soft=%d", orig.Max)) {
		t.Fatalf("after raising from 100: %q", buf.String())
	}
}
