package heartbeat

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hopproxy/hop/pkg/control"
	"github.com/hopproxy/hop/pkg/protocol"
)

// side is one end of a control stream with a Monitor on it.
type side struct {
	ch   *control.Channel
	m    *Monitor
	mute atomic.Bool // swallow everything sent and received, as a black hole would
	done chan struct{}
}

func newSide(conn net.Conn, cfg Config, lastRead func() time.Time) *side {
	s := &side{ch: control.New(conn), done: make(chan struct{})}
	send := func(m protocol.Message) bool {
		if s.mute.Load() {
			return true // swallowed
		}
		return s.ch.TrySend(m)
	}
	s.m = Start(cfg, send, lastRead)
	go func() {
		defer close(s.done)
		for {
			msg, err := s.ch.Recv()
			if err != nil {
				return
			}
			if !s.mute.Load() {
				s.m.Handle(msg)
			}
		}
	}()
	return s
}

func (s *side) close() {
	s.m.Close()
	s.ch.Close()
	<-s.done
}

func pair(cfgA, cfgB Config) (*side, *side) {
	a, b := net.Pipe()
	return newSide(a, cfgA, nil), newSide(b, cfgB, nil)
}

var fast = Config{Interval: 100 * time.Millisecond, Timeout: 500 * time.Millisecond}

func TestHealthyLinkNeverTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := pair(fast, fast)
		time.Sleep(20 * fast.Timeout)
		for _, s := range []*side{a, b} {
			if err := s.m.Err(); err != nil {
				t.Fatalf("timeout on a healthy link: %v", err)
			}
			st := s.m.Stats()
			if st.PingsSent < 90 || st.PongsReceived < 90 {
				t.Fatalf("stats %+v: want about 100 pings and pongs", st)
			}
		}
		a.close()
		b.close()
	})
}

func TestSilentPeerTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := pair(fast, fast)
		time.Sleep(time.Second) // healthy for a while: a has RTT and pong data
		b.mute.Store(true)      // b ignores pings: a hears nothing any more
		start := time.Now()
		<-a.m.Done()
		took := time.Since(start)
		// a last heard b at most one interval before the mute.
		if took > fast.Timeout+fast.Timeout/10 || took < fast.Timeout-fast.Interval {
			t.Fatalf("fired after %v, want about %v", took, fast.Timeout)
		}
		err := a.m.Err()
		var te *TimeoutError
		if !errors.Is(err, ErrTimeout) || !errors.As(err, &te) {
			t.Fatalf("err = %v", err)
		}
		if te.LastPongAge < fast.Timeout || te.Timeout != fast.Timeout {
			t.Fatalf("timeout error %+v", te)
		}
		if !strings.Contains(err.Error(), "last pong") || !strings.Contains(err.Error(), "heartbeat.timeout 500ms") {
			t.Fatalf("message %q lacks the pong age or the setting", err)
		}
		a.close()
		b.close()
	})
}

func TestNoPongEverSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := pair(fast, fast)
		b.mute.Store(true)
		<-a.m.Done()
		if err := a.m.Err(); err == nil || !strings.Contains(err.Error(), "no pong received yet") {
			t.Fatalf("err = %v", err)
		}
		a.close()
		b.close()
	})
}

// Bytes arriving on the connection keep the peer alive even when no pong
// makes it through, as on a saturated link.
func TestReadActivityCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c1, c2 := net.Pipe()
		a := newSide(c1, fast, func() time.Time { return time.Now() })
		b := newSide(c2, fast, nil)
		b.mute.Store(true)
		time.Sleep(10 * fast.Timeout)
		if err := a.m.Err(); err != nil {
			t.Fatalf("timed out despite read activity: %v", err)
		}
		a.close()
		b.close()
	})
}

func TestDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No pings from a, no check on b: b never fires though a is silent.
		a, b := pair(Config{Interval: 0, Timeout: 0}, Config{Interval: 100 * time.Millisecond, Timeout: 0})
		a.mute.Store(true)
		time.Sleep(5 * time.Second)
		if a.m.Stats().PingsSent != 0 {
			t.Fatal("interval 0 sent pings")
		}
		if err := b.m.Err(); err != nil {
			t.Fatalf("timeout 0 fired: %v", err)
		}
		a.close()
		b.close()
	})
}

func TestRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := Start(Config{Interval: time.Second}, func(protocol.Message) bool { return true }, nil)
		time.Sleep(10 * time.Millisecond)
		m.Handle(&protocol.Pong{Seq: 1, EchoNanos: 0})
		if rtt := m.Stats().LastRTT; rtt != 10*time.Millisecond {
			t.Fatalf("LastRTT = %v, want 10ms", rtt)
		}
		m.Close()
	})
}

func TestValidate(t *testing.T) {
	if err := (Config{Interval: time.Second, Timeout: time.Second}).Validate(); err == nil {
		t.Fatal("interval == timeout accepted")
	}
	if err := (Config{Interval: -1}).Validate(); err == nil {
		t.Fatal("negative accepted")
	}
	if err := fast.Validate(); err != nil {
		t.Fatal(err)
	}
}

// SetConfig changes a running Monitor's interval and timeout.
func TestSetConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := Config{Interval: time.Second, Timeout: 10 * time.Second}
		a, b := pair(slow, Config{})
		time.Sleep(5*time.Second + time.Millisecond)
		before := a.m.Stats().PingsSent
		if before != 6 {
			t.Fatalf("%d pings in 5 s at 1 s (one at start), want 6", before)
		}
		if err := a.m.SetConfig(Config{Interval: 2 * time.Second, Timeout: time.Second}); err == nil {
			t.Fatal("an interval above the timeout accepted")
		}
		quick := Config{Interval: 100 * time.Millisecond, Timeout: time.Second}
		if err := a.m.SetConfig(quick); err != nil {
			t.Fatal(err)
		}
		if got := a.m.Config(); got != quick {
			t.Fatalf("Config() = %+v after SetConfig(%+v)", got, quick)
		}
		time.Sleep(time.Second + time.Millisecond)
		if n := a.m.Stats().PingsSent - before; n != 10 {
			t.Fatalf("%d pings in 1 s after SetConfig at 100 ms, want 10", n)
		}
		// The new timeout is in force: a silent peer is noticed after 1 s.
		b.mute.Store(true)
		time.Sleep(1500 * time.Millisecond)
		if err := a.m.Err(); !errors.Is(err, ErrTimeout) {
			t.Fatalf("Err = %v, want a timeout under the new 1 s timeout", err)
		}
		a.close()
		if err := a.m.SetConfig(slow); err != nil { // stopped: returns
			t.Fatal(err)
		}
		b.close()
	})
}

// OnTimeout is told of the timeout, once, and at once when registered
// after it.
func TestOnTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := pair(fast, fast)
		got := make(chan error, 2)
		a.m.OnTimeout(func(err error) { got <- err })
		b.mute.Store(true)
		time.Sleep(2 * fast.Timeout)
		synctest.Wait()
		select {
		case err := <-got:
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("OnTimeout got %v", err)
			}
		default:
			t.Fatal("OnTimeout not called")
		}
		late := make(chan error, 1)
		a.m.OnTimeout(func(err error) { late <- err })
		if err := <-late; !errors.Is(err, ErrTimeout) {
			t.Fatalf("late OnTimeout got %v", err)
		}
		if len(got) != 0 {
			t.Fatal("OnTimeout called twice")
		}
		a.close()
		b.close()
	})
}
