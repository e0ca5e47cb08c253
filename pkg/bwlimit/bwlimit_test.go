package bwlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

func TestNilLimitsNothing(t *testing.T) {
	var l *Limit
	if New(0) != nil || New(-1) != nil {
		t.Fatal("New(<=0) is not nil")
	}
	if err := l.Wait(context.Background(), In, 1<<30); err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if l.Conn(a, In) != a {
		t.Fatal("nil Limit wrapped the conn")
	}
}

// TestRate: after the first burst, bytes pass at the set rate, and the two
// directions have buckets of their own.
func TestRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const r = 1 << 20
		l := New(r)
		start := time.Now()
		for range 48 { // 3 MiB in 64 KiB writes
			if err := l.Wait(context.Background(), In, 64<<10); err != nil {
				t.Fatal(err)
			}
		}
		got := time.Since(start)
		want := time.Duration(float64(3<<20-MaxBurst) / r * float64(time.Second))
		if got < want-10*time.Millisecond || got > want+10*time.Millisecond {
			t.Fatalf("3 MiB took %v, want %v", got, want)
		}
		start = time.Now()
		if err := l.Wait(context.Background(), Out, MaxBurst); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("the Out bucket waited %v: it shares tokens with In", d)
		}
	})
}

// TestSharedAcrossConns: two conns of one Limit share its rate.
func TestSharedAcrossConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const r = 64 << 10
		l := New(r)
		start := time.Now()
		done := make(chan struct{})
		for range 2 {
			a, b := net.Pipe()
			go io.Copy(io.Discard, b)
			c := l.Conn(a, Out)
			go func() {
				defer func() { done <- struct{}{} }()
				if _, err := c.Write(make([]byte, 4*r)); err != nil {
					t.Error(err)
				}
				c.Close()
			}()
		}
		<-done
		<-done
		// 8 seconds of tokens, less the first burst.
		if got, want := time.Since(start), 7*time.Second; got < want-10*time.Millisecond || got > want+10*time.Millisecond {
			t.Fatalf("two conns took %v, want %v", got, want)
		}
	})
}

func TestCloseEndsWaitingWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(1024)
		a, b := net.Pipe()
		defer b.Close()
		go io.Copy(io.Discard, b)
		c := l.Conn(a, In)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Write(make([]byte, 1<<20)) // ~17 minutes of tokens
			errc <- err
		}()
		time.Sleep(1500 * time.Millisecond) // between two refills
		c.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
		}
	})
}
