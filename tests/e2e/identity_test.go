package e2e

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
)

// A public port held by something else when hopc registers (here a plain
// listener of the test) is retried with backoff; once the port is free
// the proxy comes up by itself.
func TestPortReleasedProxyComesUp(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	port := holder.Addr().(*net.TCPAddr).Port
	_, cli, _ := setup(t, "", tcpProxy("clash", tcpService(t, echo), port))
	eventually(t, ready, "hopc to log the refusal and the retry", func() bool {
		return strings.Contains(lineOf(cli, "proxy clash refused:"), "already in use on the server") &&
			strings.Contains(lineOf(cli, "proxy clash refused:"), "; retrying in ")
	})
	holder.Close()
	waitProxy(t, loop(port), ready)
	if cli.count(`msg="proxy started"`) != 1 {
		t.Fatalf("hopc did not log the start of the proxy once:\n%s", cli.out.String())
	}
}

// frozenServer has a short app heartbeat, so a frozen hopc's session
// times out in four seconds (room for a -race hopc to start meanwhile).
func frozenServer(port int) string {
	return serverConfig(port, "[heartbeat]\ninterval = \"200ms\"\ntimeout = \"4s\"\n")
}

func frozenClient(srvPort int, extra string) string {
	return clientConfig(srvPort, "[heartbeat]\ninterval = \"200ms\"\ntimeout = \"1s\"\n"+extra)
}

// A hopc frozen with SIGSTOP keeps its session (and proxy) on hops until
// hops' heartbeat timeout. A second hopc with the same config file is
// refused meanwhile (client_id_in_use: the clientID is set, and it has
// another identity key), retries by itself, and gets the session and the
// proxy once the frozen session has timed out. When the first thaws it is
// refused in turn, and the second keeps serving.
func TestFrozenClientTakenOverAfterTimeout(t *testing.T) {
	srvPort, remote := freePort(t), freePort(t)
	srv := start(t, "hops", frozenServer(srvPort))
	waitListening(t, loop(srvPort), ready)
	cfg := withID(frozenClient(srvPort, tcpProxy("echo", tcpService(t, echo), remote)), "laptop")
	first := start(t, "hopc", cfg)
	waitProxy(t, loop(remote), ready)

	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	second := start(t, "hopc", cfg)
	eventually(t, ready, "the second hopc to be refused and retry", func() bool {
		return second.count("login refused: client ID in use by another hopc's live session; retrying in") > 0
	})
	if !strings.Contains(lineOf(second, "login refused: client ID in use"), `client ID \"laptop\"`) {
		t.Fatalf("the refusal does not name the client ID: %s", lineOf(second, "login refused"))
	}
	// The frozen hopc cannot serve: a working echo is the second's.
	waitProxy(t, loop(remote), ready)
	if srv.count("heartbeat timeout") < 1 || second.count(`msg="proxy started"`) != 1 {
		t.Fatalf("the takeover did not follow the stale session's heartbeat timeout:\nhops:\n%s\nsecond:\n%s", srv.out.String(), second.out.String())
	}

	if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, ready, "the thawed hopc to be refused", func() bool {
		return first.count("login refused: client ID in use") > 0
	})
	if err := tcpEchoOnce(loop(remote), []byte("still the second")); err != nil {
		t.Fatalf("the second hopc stopped serving: %v", err)
	}
	if second.count(`msg="connection lost"`) != 0 {
		t.Fatalf("the thawed hopc disturbed the second:\n%s", second.out.String())
	}
	first.cmd.Process.Kill()
}

// Without a clientID each hopc process is its own client, so the second
// one logs in at once; the frozen one's proxy name is still held, and the
// second retries proxy_exists until the frozen session times out.
func TestFrozenClientProxyNameFreedAfterTimeout(t *testing.T) {
	srvPort, remote := freePort(t), freePort(t)
	start(t, "hops", frozenServer(srvPort))
	waitListening(t, loop(srvPort), ready)
	cfg := frozenClient(srvPort, tcpProxy("echo", tcpService(t, echo), remote))
	first := start(t, "hopc", cfg)
	waitProxy(t, loop(remote), ready)
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	second := start(t, "hopc", cfg)
	eventually(t, ready, "the second hopc to retry the held name", func() bool {
		l := lineOf(second, "proxy echo refused:")
		return strings.Contains(l, "is held by another live session") && strings.Contains(l, "; retrying in ")
	})
	waitProxy(t, loop(remote), ready)
	if second.count(`msg="proxy started"`) != 1 {
		t.Fatalf("second hopc:\n%s", second.out.String())
	}
	first.cmd.Process.Signal(syscall.SIGCONT)
	first.cmd.Process.Kill()
}

// usersServer has users alice and bob with tokens of their own and no
// shared token.
func usersServer(port int) string {
	return fmt.Sprintf(`bindAddr = "127.0.0.1"
bindPort = %d
proxyBindAddr = "127.0.0.1"
gracePeriod = "1s"
p2p.stunAltPort = 0

[auth]
token = ""

[[auth.users]]
name = "alice"
token = "alice-e2e-token-0123456789"

[[auth.users]]
name = "bob"
token = "bob-e2e-token-0123456789"
`, port)
}

// userClient is a client config logging in as user with token.
func userClient(srvPort int, user, token, extra string) string {
	cfg := strings.Replace(clientConfig(srvPort, extra), `auth.token = "e2e-secret"`, fmt.Sprintf("user = %q\nauth.token = %q", user, token), 1)
	return cfg
}

func stcpProxy(name, secret string, localPort int, allow string) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"stcp\"\nsecretKey = %q\nlocalPort = %d\n%s\n", name, secret, localPort, allow)
}

func stcpVisitorOf(name, serverUser, serverName, secret string, bindPort int) string {
	su := ""
	if serverUser != "" {
		su = fmt.Sprintf("serverUser = %q\n", serverUser)
	}
	return fmt.Sprintf("\n[[visitors]]\nname = %q\ntype = \"stcp\"\n%sserverName = %q\nsecretKey = %q\nbindPort = %d\n", name, su, serverName, secret, bindPort)
}

// Two users on one hops: both may name a proxy "web" (the server keeps
// alice.web and bob.web apart), bob reaches alice's secret proxy that
// allows him and not the one that does not, his visitor without
// serverUser finds no proxy of his own by that name, and bob cannot log
// in as alice with his token.
func TestTwoUsersKeptApart(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", usersServer(srvPort))
	waitListening(t, loop(srvPort), ready)
	echoPort := tcpService(t, echo)
	rAlice, rBob := freePort(t), freePort(t)
	const sec = "stcp-e2e-secret-key"
	start(t, "hopc", userClient(srvPort, "alice", "alice-e2e-token-0123456789",
		tcpProxy("web", echoPort, rAlice)+
			stcpProxy("db", sec, echoPort, `allowUsers = ["bob"]`)+
			stcpProxy("private", sec, echoPort, "")))
	vShared, vPrivate, vOwn := freePort(t), freePort(t), freePort(t)
	bob := start(t, "hopc", userClient(srvPort, "bob", "bob-e2e-token-0123456789",
		tcpProxy("web", echoPort, rBob)+
			stcpVisitorOf("to-db", "alice", "db", sec, vShared)+
			stcpVisitorOf("to-private", "alice", "private", sec, vPrivate)+
			stcpVisitorOf("to-own-db", "", "db", sec, vOwn)))
	waitProxy(t, loop(rAlice), ready)
	waitProxy(t, loop(rBob), ready)
	for _, want := range []string{"proxy=alice.web", "proxy=bob.web", "proxy=alice.db"} {
		if srv.count(want) == 0 {
			t.Errorf("hops' log does not name %s", want)
		}
	}
	waitProxy(t, loop(vShared), ready)

	// alice's private proxy has no allowUsers: only alice's own visitors.
	waitListening(t, loop(vPrivate), ready)
	eventually(t, ready, "hops to refuse bob's visit of alice.private", func() bool {
		tcpEchoOnce(loop(vPrivate), []byte("x"))
		return strings.Contains(lineOf(srv, "visit refused"), `user \"alice\" has no secret proxy \"private\" that user \"bob\" may visit`)
	})
	// Without serverUser, bob's visitor looks for bob.db, which does not exist.
	eventually(t, ready, "hops to refuse bob's visit of bob.db", func() bool {
		tcpEchoOnce(loop(vOwn), []byte("x"))
		return strings.Contains(lineOf(srv, `no proxy named \"bob.db\"`), "visit refused")
	})
	if err := tcpEchoOnce(loop(vShared), []byte("bob visits alice.db")); err != nil {
		t.Fatal(err)
	}
	if bob.count("visit refused") == 0 {
		t.Fatal("bob's hopc did not log the refusals")
	}

	// bob's token does not make him alice.
	mallory := start(t, "hopc", userClient(srvPort, "alice", "bob-e2e-token-0123456789", tcpProxy("web", echoPort, freePort(t))))
	if code := mallory.waitExit(ready); code == 0 {
		t.Fatal("hopc logged in as alice with bob's token")
	}
	if !strings.Contains(mallory.out.String(), `login as user \"alice\" failed`) {
		t.Fatalf("hopc's message:\n%s", mallory.out.String())
	}
	if err := tcpEchoOnce(loop(rAlice), []byte("alice.web still alice's")); err != nil {
		t.Fatal(err)
	}
}
