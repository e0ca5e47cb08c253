package client

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/visit"
)

// The owner enforces allowUsers itself: a visitor the server vouches for
// but whose user is not admitted gets no handshake at all, even with the
// right secret; an admitted one gets through.
func TestOwnerChecksAllowUsers(t *testing.T) {
	var out lockedLog
	c := &Client{cfg: &config.ClientConfig{User: "home"}, log: slog.New(slog.NewTextHandler(&out, nil)), lastWarn: map[string]time.Time{}}
	p := config.ProxyConfig{Name: "ssh", Type: config.ProxySTCP, SecretKey: "right-secret", AllowUsers: []string{"laptop"}, LocalIP: "127.0.0.1", LocalPort: 1}
	try := func(user string) error {
		owner, visitor := net.Pipe()
		defer visitor.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serveVisitor(owner, &runProxy{cfg: p}, &protocol.StartWork{Proxy: "ssh", Visitor: "v1", VisitorUser: user})
		}()
		visitor.SetDeadline(time.Now().Add(5 * time.Second))
		sc, err := visit.Visitor(visitor, nil, "right-secret",
			visit.Identity{Proxy: "ssh", ProxyType: "stcp", VisitorUser: user, VisitorID: "v1", OwnerUser: "home"})
		if err == nil {
			sc.Close() // the owner dials the (absent) local service next and gives up
		}
		<-done
		return err
	}
	if err := try("mallory"); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("a user outside allowUsers: handshake gave %v, want the stream closed before any answer", err)
	}
	if !strings.Contains(out.String(), ErrNotAllowed.Error()) {
		t.Fatalf("no refusal logged:\n%s", out.String())
	}
	if err := try("laptop"); err != nil {
		t.Fatalf("an admitted user: %v", err)
	}
}
