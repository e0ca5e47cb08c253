package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// procFDs is the number of open file descriptors of pid.
func procFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// procStatus returns a field of /proc/pid/status in kB (VmRSS) or as a
// count (Threads).
func procStatus(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return -1
}

// legitEcho answers the datagrams that start with "legit" and counts the
// others, which it leaves unanswered (as an attacker's junk would be).
func legitEcho(t testing.TB, junk *atomic.Int64) int {
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
			if bytes.HasPrefix(buf[:n], []byte("legit")) || bytes.Equal(buf[:n], []byte("hello")) || bytes.Equal(buf[:n], []byte("after")) {
				pc.WriteTo(buf[:n], a)
			} else {
				junk.Add(1)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// TestUDPSourceFlood reproduces the audit's flood: 3,000 sources, each on
// its own loopback address (127.1.x.y), send one datagram each to a udp
// proxy with a 20 s idleTimeout, whose service never answers them, while
// one legitimate source keeps talking. The server caps the flows per proxy
// (limits.maxUDPFlowsPerProxy, default 1024), so hopc never holds more than
// that many flow sockets; the legitimate source keeps getting answers; and
// the unanswered flows end after limits.udpUnansweredTimeout (5 s), not
// the idleTimeout.
func TestUDPSourceFlood(t *testing.T) {
	const sources = 3000
	const maxFlows = 1024 // the default of limits.maxUDPFlowsPerProxy
	var junk atomic.Int64
	port := legitEcho(t, &junk)
	remote := freePort(t)
	proxy := strings.Replace(udpProxy("flood", port, remote), `idleTimeout = "2s"`, `idleTimeout = "20s"`, 1)
	srv, cli, _ := setup(t, "", proxy)
	legit, err := net.Dial("udp", loop(remote))
	if err != nil {
		t.Fatal(err)
	}
	defer legit.Close()
	buf := make([]byte, 2048)
	eventually(t, ready, "a udp echo through the proxy", func() bool {
		legit.Write([]byte("hello"))
		legit.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := legit.Read(buf)
		return err == nil && string(buf[:n]) == "hello"
	})
	pid, spid := cli.cmd.Process.Pid, srv.cmd.Process.Pid
	baseFDs, baseRSS, baseSrvRSS := procFDs(pid), procStatus(pid, "VmRSS"), procStatus(spid, "VmRSS")

	// The legitimate source: one probe every 20 ms, counting answers.
	var asked, answered atomic.Int64
	stopLegit := make(chan struct{})
	legitDone := make(chan struct{})
	go func() {
		defer close(legitDone)
		b := make([]byte, 64)
		for i := 0; ; i++ {
			select {
			case <-stopLegit:
				return
			default:
			}
			msg := fmt.Sprintf("legit %d", i)
			legit.Write([]byte(msg))
			asked.Add(1)
			legit.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			for {
				n, err := legit.Read(b)
				if err != nil {
					break
				}
				if strings.HasPrefix(string(b[:n]), "legit ") {
					answered.Add(1)
				}
			}
		}
	}()

	// Peak sampling of hopc's descriptors and memory.
	var peakFDs, peakRSS, peakSrvRSS atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peakFDs.Store(max(peakFDs.Load(), int64(procFDs(pid))))
			peakRSS.Store(max(peakRSS.Load(), int64(procStatus(pid, "VmRSS"))))
			peakSrvRSS.Store(max(peakSrvRSS.Load(), int64(procStatus(spid, "VmRSS"))))
			select {
			case <-stopSample:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// The flood: one socket per source address, one datagram each.
	floodStart := time.Now()
	var socks []*net.UDPConn
	for i := range sources {
		src := &net.UDPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(i%250+1))}
		c, err := net.ListenUDP("udp4", src)
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
		socks = append(socks, c)
		c.WriteToUDP([]byte("flood"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: remote})
		if i%4 == 3 {
			// Paced, so that the kernel's receive buffer of the public
			// socket does not drop most of the flood before hops sees it.
			time.Sleep(time.Millisecond)
		}
	}
	defer func() {
		for _, c := range socks {
			c.Close()
		}
	}()
	floodTime := time.Since(floodStart)
	legitAskedDuring, legitAnsweredDuring := asked.Load(), answered.Load()

	// The relays work through what the flood left (the flows that stayed
	// open their streams and pass their datagram on): wait until no more
	// datagrams reach the service for a second.
	last, stable := junk.Load(), time.Now()
	eventually(t, 60*time.Second, "the flood's datagrams to stop reaching the service", func() bool {
		if n := junk.Load(); n != last {
			last, stable = n, time.Now()
		}
		return time.Since(stable) > time.Second
	})
	// The flows of the flood sources end, unanswered: hopc's descriptors
	// come back to the baseline well before the 20 s idleTimeout.
	eventually(t, 60*time.Second, "hopc's flow sockets closed after the flood", func() bool {
		return procFDs(pid) <= baseFDs+4
	})
	gone := time.Since(floodStart) - floodTime
	close(stopSample)
	<-sampled
	close(stopLegit)
	<-legitDone
	t.Logf("flood of %d sources in %v: %d reached the service; hopc fds %d -> peak %d -> %d (flows gone %v after the flood); VmRSS %d kB -> peak %d kB -> %d kB (hops: %d kB -> peak %d kB); legit source answered %d of %d during the flood (%d of %d in all)",
		sources, floodTime.Round(time.Millisecond), junk.Load(), baseFDs, peakFDs.Load(), procFDs(pid), gone.Round(100*time.Millisecond),
		baseRSS, peakRSS.Load(), procStatus(pid, "VmRSS"), baseSrvRSS, peakSrvRSS.Load(), legitAnsweredDuring, legitAskedDuring, answered.Load(), asked.Load())
	if p := peakFDs.Load(); p > int64(baseFDs+maxFlows+16) {
		t.Errorf("hopc peaked at %d fds (baseline %d): more flows than the cap of %d", p, baseFDs, maxFlows)
	}
	if legitAnsweredDuring == 0 {
		t.Errorf("the legitimate source got no answer during the flood (%d probes)", legitAskedDuring)
	}
	if gone > 15*time.Second {
		t.Errorf("unanswered flows lasted %v after the flood: the idleTimeout, not udpUnansweredTimeout", gone)
	}
	// After the flood, the legitimate source still gets answers.
	eventually(t, 5*time.Second, "an echo after the flood", func() bool {
		legit.Write([]byte("after"))
		legit.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, err := legit.Read(buf)
			if err != nil {
				return false
			}
			if string(buf[:n]) == "after" {
				return true
			}
		}
	})
}
