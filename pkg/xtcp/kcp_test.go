package xtcp

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"math/big"
	"sync"
	"testing"
	"time"
)

// sendDigest writes n random bytes to w, closes it and returns their
// SHA-256.
func sendDigest(w io.WriteCloser, n int64) ([32]byte, error) {
	h := sha256.New()
	_, err := io.CopyN(io.MultiWriter(w, h), rand.Reader, n)
	w.Close()
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, err
}

func readDigest(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

func TestKCPTransfer(t *testing.T) {
	checkLeaks(t)
	vs, os, _, _ := kcpPair(t, testSessionConfig())

	const size = 10 << 20
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		st, err := os.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer st.Close()
		sum, n, err := readDigest(st)
		got <- result{sum, n, err}
	}()
	st, err := vs.Open()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	want, err := sendDigest(st, size)
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.n != size || r.sum != want {
		t.Fatalf("received %d bytes, err %v, digest match %v", r.n, r.err, r.sum == want)
	}
	t.Logf("10 MB in %v; visitor %+v", time.Since(start), vs.Stats())
}

func TestKCPConcurrentStreams(t *testing.T) {
	checkLeaks(t)
	// Six streams of 1 MiB each way, with -race, on a machine running other
	// packages' tests: a 600 ms keepalive timeout (which is also yamux's
	// write timeout) is a test of the machine's load, not of the streams.
	cfg := testSessionConfig()
	cfg.KeepaliveTimeout = 10 * time.Second
	vs, os, _, _ := kcpPair(t, cfg)
	const streams, size = 6, 1 << 20

	// Echo server on whichever side accepts; streams opened from both.
	echo := func(s *Session) {
		for {
			st, err := s.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(st, st)
				st.Close()
			}()
		}
	}
	go echo(vs)
	go echo(os)

	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		opener := vs
		if i%2 == 1 {
			opener = os
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := opener.Open()
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			res := make(chan [32]byte, 1)
			go func() {
				sum, _, _ := readDigest(st)
				res <- sum
			}()
			// yamux's Close is a half-close: it sends FIN and reads on.
			want, err := sendDigest(st, size)
			if err != nil {
				errs <- err
				return
			}
			if got := <-res; got != want {
				errs <- errors.New("digest mismatch")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestKCPPingPong(t *testing.T) {
	checkLeaks(t)
	vs, os, _, _ := kcpPair(t, testSessionConfig())
	go func() {
		st, err := os.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(st, buf); err != nil {
				return
			}
			if _, err := st.Write(buf); err != nil {
				return
			}
		}
	}()
	st, err := vs.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out, in := make([]byte, 64), make([]byte, 64)
	const rounds = 500
	start := time.Now()
	for i := range rounds {
		rand.Read(out)
		if _, err := st.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(st, in); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("round %d: echo differs", i)
		}
	}
	t.Logf("64-byte round trip: %v on average", time.Since(start)/rounds)
}

// TestKCPDeadPath closes the owner's socket under its session, as a
// crashed or vanished peer: the visitor must see ErrPathDead within the
// keepalive timeout.
func TestKCPDeadPath(t *testing.T) {
	checkLeaks(t)
	cfg := testSessionConfig()
	vs, os, _, oconn := kcpPair(t, cfg)
	st, err := vs.Open() // a stream in use when the path dies
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("hello"))
	time.Sleep(2 * cfg.KeepaliveInterval)

	killed := time.Now()
	oconn.Close()
	select {
	case <-vs.Done():
	case <-time.After(cfg.KeepaliveTimeout + 2*time.Second):
		t.Fatalf("no death after %v", time.Since(killed))
	}
	took := time.Since(killed)
	if !errors.Is(vs.Err(), ErrPathDead) {
		t.Fatalf("visitor: %v, want ErrPathDead", vs.Err())
	}
	if took < cfg.KeepaliveTimeout-cfg.KeepaliveInterval || took > cfg.KeepaliveTimeout+500*time.Millisecond {
		t.Fatalf("dead after %v, timeout %v", took, cfg.KeepaliveTimeout)
	}
	if _, err := vs.Open(); !errors.Is(err, ErrPathDead) {
		t.Fatalf("Open after death: %v", err)
	}
	if _, err := vs.Accept(); !errors.Is(err, ErrPathDead) {
		t.Fatalf("Accept after death: %v", err)
	}
	if _, err := st.Read(make([]byte, 1)); err == nil {
		t.Fatal("stream read after death")
	}
	<-os.Done()
	t.Logf("visitor: %v after %v; owner: %v", vs.Err(), took, os.Err())
}

func TestKCPPeerClose(t *testing.T) {
	checkLeaks(t)
	vs, os, _, _ := kcpPair(t, testSessionConfig())
	start := time.Now()
	vs.Close()
	select {
	case <-os.Done():
	case <-time.After(time.Second):
		t.Fatal("owner did not notice")
	}
	if !errors.Is(os.Err(), ErrPeerClosed) || !errors.Is(vs.Err(), ErrClosed) {
		t.Fatalf("owner %v, visitor %v", os.Err(), vs.Err())
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Fatalf("took %v", took)
	}
	vs.Close() // twice is fine
}

// TestKCPStrangers sends junk, forgeries and packets from other addresses:
// the session must not notice.
func TestKCPStrangers(t *testing.T) {
	checkLeaks(t)
	vs, os, _, oconn := kcpPair(t, testSessionConfig())
	stranger := listen(t)
	target := addrOf(oconn)
	forged := newFrameSealer([]byte("guessed secret"), NewSessionID(), kindKCP, RoleVisitor)
	for i := range 200 {
		n, _ := rand.Int(rand.Reader, big.NewInt(1400))
		junk := make([]byte, n.Int64())
		rand.Read(junk)
		switch i % 3 {
		case 0:
			stranger.WriteToUDPAddrPort(junk, target)
		case 1:
			stranger.WriteToUDPAddrPort(forged.seal(nil, junk), target)
		case 2:
			stranger.WriteToUDPAddrPort(newCtlKey(testSecret, NewSessionID()).seal(nil, ctlClose, RoleVisitor, 0, time.Now()), target)
		}
	}
	if got, err := echoOnce(vs, os, []byte("still here?")); err != nil || string(got) != "still here?" {
		t.Fatalf("echo after the junk: %q %v", got, err)
	}
	if s := os.Stats(); s.Stray < 200 || os.Err() != nil {
		t.Fatalf("owner stats %+v, err %v", s, os.Err())
	}
}

func TestSessionConfigErrors(t *testing.T) {
	conn := listen(t)
	peer := deadPort(t)
	bad := DefaultKCPConfig()
	bad.MTU = 1490
	for name, cfg := range map[string]SessionConfig{
		"timeout not above interval": {KeepaliveInterval: time.Second, KeepaliveTimeout: time.Second},
		"negative":                   {KeepaliveInterval: -1},
		"kcp mtu":                    {KCP: &bad},
		"zero kcp config":            {KCP: &KCPConfig{}},
		"small window":               {MaxStreamWindow: 1024},
	} {
		if s, err := DialKCP(conn, peer, testSecret, NewSessionID(), cfg); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DialKCP(conn, peer, nil, NewSessionID(), SessionConfig{}); err == nil {
		t.Error("empty key accepted")
	}
	if _, err := AcceptKCP(conn, peer, testSecret, SessionID{}, SessionConfig{}); err == nil {
		t.Error("zero session accepted")
	}
	// The socket is still the caller's after a failed start.
	if _, err := conn.WriteToUDPAddrPort([]byte("x"), peer); err != nil {
		t.Fatalf("socket closed by a failed start: %v", err)
	}
}
