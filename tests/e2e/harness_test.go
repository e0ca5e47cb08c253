// Package e2e runs the real hops and hopc binaries as processes, with
// temporary configs on free loopback ports, and checks what a user sees.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hopproxy/hop/tests/binaries"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(binaries.Main(m, &binDir))
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a hops or hopc process started by a test.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	out    syncBuffer
	exited chan struct{}
	err    error
}

// writeConfig writes cfg to a temporary file for bin.
func writeConfig(t testing.TB, bin, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), bin+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs bin with a config file holding cfg. The process is ended by
// PID when the test ends, if it is still running.
func start(t testing.TB, bin, cfg string, extraArgs ...string) *proc {
	t.Helper()
	args := append([]string{"-c", writeConfig(t, bin, cfg)}, extraArgs...)
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	return launch(t, bin, cmd, func(c *exec.Cmd) (func() error, error) {
		if err := c.Start(); err != nil {
			return nil, err
		}
		return c.Wait, nil
	})
}

// launch starts cmd through starter, which returns how to wait for it,
// and records its output.
func launch(t testing.TB, name string, cmd *exec.Cmd, starter func(*exec.Cmd) (func() error, error)) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	wait, err := starter(cmd)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		state := "running at the end of the test, killed"
		select {
		case <-p.exited:
			state = fmt.Sprintf("had exited before the end of the test: %v", p.err)
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s (pid %d, %s) output:\n%s", p.name, p.cmd.Process.Pid, state, p.out.String())
		}
	})
	return p
}

// interrupt sends SIGINT and returns the exit code, failing the test if
// the process does not exit within d.
func (p *proc) interrupt(d time.Duration) int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	return p.waitExit(d)
}

// waitExit waits up to d for the process to exit and returns its code.
func (p *proc) waitExit(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %v", p.name, d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// count returns how often s appears in the output.
func (p *proc) count(s string) int { return strings.Count(p.out.String(), s) }

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		// The kernel may hand a port just closed out again: never give one
		// twice, or a test's bindPort and vhost port can be the same.
		givenMu.Lock()
		dup := given[port]
		given[port] = true
		givenMu.Unlock()
		if !dup {
			return port
		}
	}
}

var (
	givenMu sync.Mutex
	given   = map[int]bool{} // ports freePort returned in this test binary
)

// tcpService serves each connection with handle on a loopback port.
func tcpService(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().(*net.TCPAddr).Port
}

// echo copies a connection back to itself.
func echo(c net.Conn) { io.Copy(c, c) }

// digest reads to EOF and answers with the SHA-256 of what it read: it
// checks integrity and half-close at once.
func digest(c net.Conn) {
	h := sha256.New()
	if _, err := io.Copy(h, c); err != nil {
		return
	}
	c.Write(h.Sum(nil))
}

// udpEcho answers each datagram with the same bytes.
func udpEcho(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], a)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// tcpEchoOnce sends msg through addr and checks the echo, with a deadline.
func tcpEchoOnce(addr string, msg []byte) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo mismatch")
	}
	return nil
}

// waitProxy polls until a tcp echo through addr works.
func waitProxy(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	eventually(t, d, "a tcp echo through "+addr, func() bool { return tcpEchoOnce(addr, []byte("ping")) == nil })
}

// waitListening polls until something accepts TCP on addr.
func waitListening(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	eventually(t, d, addr+" to accept", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// pattern writes n deterministic pseudo-random bytes to w.
func pattern(w io.Writer, n int64, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, 64<<10)
	for n > 0 {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		k := min(int64(len(buf)), n)
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func serverConfig(port int, extra string) string {
	// p2p.stunAltPort = 0: tests run many servers at once; the STUN
	// server still answers on UDP bindPort.
	return fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nproxyBindAddr = \"127.0.0.1\"\nauth.token = \"e2e-secret\"\ngracePeriod = \"1s\"\np2p.stunAltPort = 0\n%s\n", port, extra)
}

func clientConfig(serverPort int, extra string) string {
	return fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = \"e2e-secret\"\ngracePeriod = \"1s\"\n[reconnect]\nminDelay = \"100ms\"\nmaxDelay = \"1s\"\n%s\n", serverPort, extra)
}

func tcpProxy(name string, localPort, remotePort int) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"tcp\"\nlocalPort = %d\nremotePort = %d\n", name, localPort, remotePort)
}

func udpProxy(name string, localPort, remotePort int) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"udp\"\nlocalPort = %d\nremotePort = %d\nidleTimeout = \"2s\"\n", name, localPort, remotePort)
}

func loop(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// runBin runs a binary to completion (bounded) and returns its combined
// output and exit code.
func runBin(t testing.TB, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, bin), args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return string(out), 0
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
