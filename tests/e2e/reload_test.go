package e2e

import (
	"bufio"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHopcReloadOnSIGHUP: hopc with two tcp proxies and an open echo
// connection through the first; the file gains a third proxy and loses
// the second, and SIGHUP applies it: the third works, the second's port
// refuses, the open connection still echoes. Then a file with an unknown
// key: hopc logs its file:line, keeps running with the previous proxies,
// and still exits cleanly on SIGINT.
func TestHopcReloadOnSIGHUP(t *testing.T) {
	echoPort := tcpService(t, echo)
	r1, r2, r3 := freePort(t), freePort(t), freePort(t)
	srv, cli, srvPort := setup(t, "", tcpProxy("one", echoPort, r1)+tcpProxy("two", echoPort, r2))
	waitProxy(t, loop(r1), ready)
	waitProxy(t, loop(r2), ready)
	path := cli.cmd.Args[2] // hopc -c PATH
	if !strings.HasSuffix(path, "hopc.toml") {
		t.Fatalf("hopc args %q", cli.cmd.Args)
	}

	conn, err := net.Dial("tcp", loop(r1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	say := func(msg string) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(msg + "\n")); err != nil {
			t.Fatalf("the open connection: %v", err)
		}
		if line, err := rd.ReadString('\n'); err != nil || line != msg+"\n" {
			t.Fatalf("the open connection echoed %q, %v", line, err)
		}
	}
	say("before")

	writeFile(t, path, clientConfig(srvPort, tcpProxy("one", echoPort, r1)+tcpProxy("three", echoPort, r3)))
	if err := syscall.Kill(cli.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitProxy(t, loop(r3), ready)
	eventually(t, ready, "the removed proxy's port to refuse", func() bool {
		c, err := net.DialTimeout("tcp", loop(r2), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	say("after")
	if cli.count("added=[proxy:three] removed=[proxy:two] changed=[] unchanged=1") != 1 {
		t.Fatal("hopc did not log the reload's summary")
	}

	writeFile(t, path, clientConfig(srvPort, tcpProxy("one", echoPort, r1)+"locaPort = 1\n"))
	if err := syscall.Kill(cli.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, ready, "hopc to refuse the invalid file", func() bool { return cli.count("reload refused: the running config stays") == 1 })
	if cli.count(path+":") == 0 || cli.count("locaPort") == 0 {
		t.Fatal("the refusal does not name the file:line and the key")
	}
	if !cli.running() {
		t.Fatalf("hopc ended: %v", cli.err)
	}
	say("still")
	waitProxy(t, loop(r3), ready)
	for _, p := range []*proc{cli, srv} {
		if code := p.interrupt(10 * time.Second); code != 0 {
			t.Fatalf("%s exit code %d after SIGINT", p.name, code)
		}
	}
}
