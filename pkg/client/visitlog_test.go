package client

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/logging"
	"github.com/hopproxy/hop/pkg/protocol"
	"github.com/hopproxy/hop/pkg/visit"
)

type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestVisitorRefusedLogsOnce: a visitor that keeps presenting a wrong
// secretKey (3,000 WARNs in the audit) gets one line and, after the
// window, one summary with the count; each attempt is still refused.
func TestVisitorRefusedLogsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedLog
		c := &Client{cfg: &config.ClientConfig{}, log: slog.New(slog.NewTextHandler(&out, nil))}
		p := config.ProxyConfig{Name: "ssh", Type: config.ProxySTCP, SecretKey: "right-secret"}
		const n = 200
		for range n {
			owner, visitor := net.Pipe()
			answer := make(chan error, 1)
			go func() {
				defer visitor.Close()
				_, err := visit.Visitor(visitor, nil, "wrong-secret",
					visit.Identity{Proxy: "ssh", ProxyType: string(p.Type), VisitorID: "mallory"})
				answer <- err
			}()
			c.serveVisitor(owner, &runProxy{cfg: p}, &protocol.StartWork{Proxy: "ssh", Visitor: "mallory"})
			if err := <-answer; !errors.Is(err, visit.ErrOwnerUnconfirmed) {
				t.Fatalf("wrong secret got %v, want visit.ErrOwnerUnconfirmed", err)
			}
		}
		if got := strings.Count(out.String(), `msg="visitor refused`); got != 1 {
			t.Fatalf("%d lines for %d refused visits:\n%s", got, n, out.String())
		}
		time.Sleep(logging.DefaultLimitInterval)
		synctest.Wait()
		want := fmt.Sprintf("visitor refused (%d more like this from mallory in the last 10s)", n-1)
		if !strings.Contains(out.String(), want) || strings.Count(out.String(), "\n") != 2 {
			t.Fatalf("want one summary %q:\n%s", want, out.String())
		}
	})
}
