package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func stcpOwner(tcpPort, udpPort int, secret, allow string) string {
	return fmt.Sprintf(`
[[proxies]]
name = "sec-tcp"
type = "stcp"
secretKey = %[3]q
localPort = %[1]d
%[4]s

[[proxies]]
name = "sec-udp"
type = "sudp"
secretKey = %[3]q
localPort = %[2]d
idleTimeout = "2s"
`, tcpPort, udpPort, secret, allow)
}

func stcpVisitor(tcpPort, udpPort int, secret string) string {
	return fmt.Sprintf(`
[[visitors]]
name = "v-tcp"
type = "stcp"
serverName = "sec-tcp"
secretKey = %[3]q
bindPort = %[1]d

[[visitors]]
name = "v-udp"
type = "sudp"
serverName = "sec-udp"
secretKey = %[3]q
bindPort = %[2]d
idleTimeout = "2s"
`, tcpPort, udpPort, secret)
}

// withID puts a clientID into a client config (before its first table).
func withID(cfg, id string) string {
	return strings.Replace(cfg, "gracePeriod", fmt.Sprintf("clientID = %q\ngracePeriod", id), 1)
}

func TestSTCPAndSUDPThroughRelay(t *testing.T) {
	srvPort := freePort(t)
	start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	owner := start(t, "hopc", withID(clientConfig(srvPort, stcpOwner(tcpService(t, echo), udpEcho(t), "s3cret-key", "")), "owner"))
	vt, vu := freePort(t), freePort(t)
	start(t, "hopc", withID(clientConfig(srvPort, stcpVisitor(vt, vu, "s3cret-key")), "visitor"))
	waitProxy(t, loop(vt), ready)
	if err := tcpEchoOnce(loop(vt), []byte("through the relay")); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", loop(vu))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 1500)
	eventually(t, ready, "a sudp echo", func() bool {
		conn.Write([]byte("dgram"))
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		return err == nil && string(buf[:n]) == "dgram"
	})
	if owner.count("visitor refused") != 0 {
		t.Fatalf("owner refused a visitor with the right secret:\n%s", owner.out.String())
	}
}

func TestSTCPWrongSecretIsRefused(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", serverConfig(srvPort, ""))
	waitListening(t, loop(srvPort), ready)
	owner := start(t, "hopc", withID(clientConfig(srvPort, stcpOwner(tcpService(t, echo), udpEcho(t), "right-secret", "")), "owner"))
	eventually(t, ready, "the owner's proxies", func() bool { return srv.count("secret proxy registered") == 2 })
	vt, vu := freePort(t), freePort(t)
	vis := start(t, "hopc", withID(clientConfig(srvPort, stcpVisitor(vt, vu, "wrong-secret")), "visitor"))
	waitListening(t, loop(vt), ready)
	eventually(t, ready, "the owner to refuse the visitor", func() bool {
		tcpEchoOnce(loop(vt), []byte("x"))
		return owner.count("visitor refused") > 0
	})
	if !strings.Contains(lineOf(owner, "visitor refused"), "secretKey differs") {
		t.Fatalf("owner's reason: %s", lineOf(owner, "visitor refused"))
	}
	// The visitor checks the owner first (the owner confirms the key
	// before the visitor does): it refuses an owner that cannot prove the
	// secret, and says so.
	eventually(t, 5*time.Second, "the visitor to log the refusal", func() bool {
		return strings.Contains(lineOf(vis, "visit refused"), "could not prove it knows the secretKey")
	})
}

// allowUsers lists users (frp semantics): the owner's proxy admits the
// visitors of user friend, not those of user stranger, whatever their
// client IDs; both know the secretKey.
func TestSTCPAllowUsers(t *testing.T) {
	srvPort := freePort(t)
	srv := start(t, "hops", strings.Replace(serverConfig(srvPort, ""), `auth.token = "e2e-secret"`,
		"auth.users = [{ name = \"owner\", token = \"owner-e2e-token-0123\" }, { name = \"friend\", token = \"friend-e2e-token-0123\" }, { name = \"stranger\", token = \"stranger-e2e-token-012\" }]", 1))
	waitListening(t, loop(srvPort), ready)
	asUser := func(cfg, user, token string) string {
		return strings.Replace(cfg, `auth.token = "e2e-secret"`, fmt.Sprintf("user = %q\nauth.token = %q", user, token), 1)
	}
	withServerUser := func(cfg string) string {
		return strings.ReplaceAll(cfg, "serverName = ", "serverUser = \"owner\"\nserverName = ")
	}
	start(t, "hopc", asUser(clientConfig(srvPort, stcpOwner(tcpService(t, echo), udpEcho(t), "s3cret-key", `allowUsers = ["friend"]`)), "owner", "owner-e2e-token-0123"))
	eventually(t, ready, "the owner's proxies", func() bool { return srv.count("secret proxy registered") == 2 })
	vt, vu := freePort(t), freePort(t)
	// The stranger even takes the client ID "friend": allowUsers is about
	// the authenticated user.
	vis := start(t, "hopc", withID(asUser(clientConfig(srvPort, withServerUser(stcpVisitor(vt, vu, "s3cret-key"))), "stranger", "stranger-e2e-token-012"), "friend"))
	waitListening(t, loop(vt), ready)
	eventually(t, ready, "the server to refuse the stranger", func() bool {
		tcpEchoOnce(loop(vt), []byte("x"))
		return srv.count("visit refused") > 0
	})
	if !strings.Contains(lineOf(srv, "visit refused"), `that user \"stranger\" may visit`) {
		t.Fatalf("server's reason: %s", lineOf(srv, "visit refused"))
	}
	eventually(t, 5*time.Second, "the visitor to log the refusal", func() bool {
		return strings.Contains(lineOf(vis, "visit refused"), "allowUsers")
	})
	ft, fu := freePort(t), freePort(t)
	start(t, "hopc", asUser(clientConfig(srvPort, withServerUser(stcpVisitor(ft, fu, "s3cret-key"))), "friend", "friend-e2e-token-0123"))
	waitProxy(t, loop(ft), ready)
}
