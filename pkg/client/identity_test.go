package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/auth"
	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/mux"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/transport"
	"github.com/hopproxy/hop/tests/faultrelay"
)

// loginAs logs in by hand as (user, clientID) with the identity id and
// returns the mux session and control stream, or the login error.
func loginAs(t *testing.T, port int, user, token, clientID string, id auth.Identity) (*mux.Session, net.Conn, error) {
	t.Helper()
	raw, err := net.Dial("tcp", addr(port))
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	b, err := transport.Binding(tc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Client(tc, token, b, id, protocol.ClientHello{User: user, ClientID: clientID, HeartbeatIntervalMs: 1000}); err != nil {
		tc.Close()
		return nil, nil, err
	}
	ms, err := mux.Client(tc, mux.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := ms.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms, ctrl, nil
}

// register sends a NewProxy on ctrl and returns the server's answer.
func register(t *testing.T, ctrl net.Conn, m *protocol.NewProxy) *protocol.NewProxyResp {
	t.Helper()
	if err := protocol.WriteMsg(ctrl, m); err != nil {
		t.Fatal(err)
	}
	ctrl.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer ctrl.SetReadDeadline(time.Time{})
	for {
		msg, err := protocol.ReadMsg(ctrl)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := msg.(*protocol.NewProxyResp); ok {
			return r
		}
	}
}

// The audit's session hijack: a token holder logs in with a victim's
// client ID. It is refused with client_id_in_use, and the victim's session
// and proxy stay; only the victim's own process (its identity key) may
// replace its session.
func TestClientIDHijackRefused(t *testing.T) {
	var slog logBuf
	port := freePort(t)
	runServer(t, serverConfig(port), slog.logger())
	victim := auth.NewIdentity()
	vms, vctrl, err := loginAs(t, port, "", "t", "victim", victim)
	if err != nil {
		t.Fatal(err)
	}
	if r := register(t, vctrl, &protocol.NewProxy{Name: "svc", ProxyType: protocol.ProxySTCP}); r.Error != "" {
		t.Fatalf("victim's proxy: %+v", r)
	}

	_, _, err = loginAs(t, port, "", "t", "victim", auth.NewIdentity())
	var pe *protocol.Error
	if !errors.Is(err, auth.ErrRejected) || !errors.As(err, &pe) || pe.Code != protocol.CodeClientIDInUse ||
		!strings.Contains(pe.Message, `client ID "victim"`) {
		t.Fatalf("attacker's login: %v", err)
	}
	select {
	case <-vms.Done():
		t.Fatalf("the refused login ended the victim's session: %v", vms.Err())
	default:
	}
	// The victim's session still works and still holds its proxy name.
	if r := register(t, vctrl, &protocol.NewProxy{Name: "svc2", ProxyType: protocol.ProxySTCP}); r.Error != "" {
		t.Fatalf("victim's session after the attempt: %+v", r)
	}
	_, actrl, err := loginAs(t, port, "", "t", "attacker", auth.NewIdentity())
	if err != nil {
		t.Fatal(err)
	}
	if r := register(t, actrl, &protocol.NewProxy{Name: "svc", ProxyType: protocol.ProxySTCP}); r.Code != protocol.CodeProxyExists {
		t.Fatalf("attacker took the victim's proxy name: %+v", r)
	}

	// The victim's own process reconnecting replaces its session at once.
	_, _, err = loginAs(t, port, "", "t", "victim", victim)
	if err != nil {
		t.Fatalf("victim's reconnect: %v", err)
	}
	select {
	case <-vms.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the victim's old session was not replaced")
	}
	if !strings.Contains(slog.String(), "replacing the previous session") {
		t.Fatalf("server log:\n%s", slog.String())
	}
}

// A hopc whose link went dead (here: black-holed, as if frozen) keeps its
// client ID on the server until the server's heartbeat timeout; a second
// hopc with the same config is refused with client_id_in_use meanwhile,
// retries by itself and gets the session and the proxy once the stale
// session times out. The first, when its link heals, is refused in turn
// and the second keeps serving.
func TestStaleSessionTakenOverAfterTimeout(t *testing.T) {
	var slog, alog, blog logBuf
	port, remote := freePort(t), freePort(t)
	scfg := serverConfig(port)
	scfg.Heartbeat.Interval = config.Dur(200 * time.Millisecond)
	scfg.Heartbeat.Timeout = config.Dur(3 * time.Second)
	runServer(t, scfg, slog.logger())
	relay, err := faultrelay.Start("127.0.0.1:0", addr(port))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	_, rp, _ := net.SplitHostPort(relay.Addr())

	echo := echoService(t)
	cfgFor := func(serverPort int) *config.ClientConfig {
		c := clientConfig(serverPort, tcpProxy("echo", echo, remote))
		c.ClientID = "laptop"
		c.Heartbeat.Interval = config.Dur(100 * time.Millisecond)
		c.Heartbeat.Timeout = config.Dur(500 * time.Millisecond)
		c.Transport.HandshakeTimeout = config.Dur(500 * time.Millisecond)
		return c
	}
	acfg := cfgFor(0)
	acfg.ServerPort, _ = strconv.Atoi(rp)
	runClient(t, acfg, alog.logger())
	eventually(t, 5*time.Second, "echo through the first client", func() bool { return echoWorks(addr(remote)) })

	relay.BlackHole(faultrelay.Both)
	b, _ := runClient(t, cfgFor(port), blog.logger())
	eventually(t, 10*time.Second, "the second client to be refused and retry", func() bool {
		return strings.Contains(blog.String(), "login refused: client ID in use by another hopc's live session; retrying in")
	})
	eventually(t, 15*time.Second, "the second client to take over after the heartbeat timeout", func() bool {
		return b.Stats().LoggedIn && echoWorks(addr(remote))
	})
	if s := slog.String(); !strings.Contains(s, "heartbeat timeout") {
		t.Fatalf("the stale session did not end by heartbeat timeout:\n%s", s)
	}

	relay.Heal()
	eventually(t, 10*time.Second, "the first client to be refused in turn", func() bool {
		return strings.Count(alog.String(), "login refused: client ID in use") > 0
	})
	if st := b.Stats(); st.Sessions != 1 || !st.LoggedIn || !echoWorks(addr(remote)) {
		t.Fatalf("the second client was disturbed: %+v", st)
	}
}

// Users with tokens of their own: each keeps its own proxy names, a user
// cannot log in with another user's token, and an unknown user is refused
// exactly like a wrong token.
func TestUsersKeptApart(t *testing.T) {
	var slog logBuf
	port := freePort(t)
	scfg := serverConfig(port)
	scfg.Auth.Token = "" // only listed users
	scfg.Auth.Users = []config.AuthUser{{Name: "alice", Token: "alice-token"}, {Name: "bob", Token: "bob-token"}}
	runServer(t, scfg, slog.logger())

	echo := echoService(t)
	r1, r2 := freePort(t), freePort(t)
	for _, u := range []struct {
		user, token string
		remote      int
	}{{"alice", "alice-token", r1}, {"bob", "bob-token", r2}} {
		var log logBuf
		c := clientConfig(port, tcpProxy("web", echo, u.remote))
		c.User, c.Auth.Token, c.ClientID = u.user, u.token, "same-id"
		runClient(t, c, log.logger())
	}
	eventually(t, 5*time.Second, "both users' proxy web", func() bool { return echoWorks(addr(r1)) && echoWorks(addr(r2)) })
	for _, want := range []string{"proxy=alice.web", "proxy=bob.web"} {
		if !strings.Contains(slog.String(), want) {
			t.Errorf("server log lacks %s", want)
		}
	}

	refusal := func(user, token string) string {
		t.Helper()
		var log logBuf
		c := clientConfig(port)
		c.User, c.Auth.Token = user, token
		cl, err := client.New(c, log.logger())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = cl.Run(ctx)
		if !errors.Is(err, client.ErrPermanent) || !errors.Is(err, auth.ErrAuthFailed) {
			t.Fatalf("user %q: Run = %v, want a permanent ErrAuthFailed", user, err)
		}
		return err.Error()
	}
	wrong := refusal("alice", "bob-token")
	if !strings.Contains(wrong, `login as user "alice" failed`) {
		t.Fatalf("wrong token: %s", wrong)
	}
	if unknown := refusal("carol", "bob-token"); unknown != strings.Replace(wrong, `"alice"`, `"carol"`, 1) {
		t.Fatalf("an unknown user reads differently from a wrong token:\n%s\n%s", unknown, wrong)
	}
	refusal("", "alice-token") // no shared token: the empty user has none
}
