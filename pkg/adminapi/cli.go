package adminapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
)

// Errors of Client.
var (
	// ErrOff: the config file has webServer.port = 0.
	ErrOff = errors.New("the admin API is off in this config (webServer.port = 0)")
	// ErrUnreachable: nothing answered on webServer.addr:port.
	ErrUnreachable = errors.New("cannot reach hopc's admin API")
	// ErrAPI: the API answered with an error.
	ErrAPI = errors.New("hopc's admin API refused")
)

// Client calls the admin API of a running hopc.
type Client struct {
	base string
	cfg  config.WebServerConfig
	http *http.Client
}

// NewClient returns a client of the API that cfg (the [webServer] of the
// running hopc's config file) describes: basic auth with its user and
// password, and over TLS with tls.certFile trusted as the root when set.
func NewClient(cfg config.WebServerConfig) (*Client, error) {
	if cfg.Port == 0 {
		return nil, fmt.Errorf("%w; set webServer.port (e.g. 7400) in it and restart hopc", ErrOff)
	}
	host := cfg.Addr
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening on every address: this host is one of them
	}
	tr := &http.Transport{}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CertFile)
		if err != nil {
			return nil, fmt.Errorf("webServer.tls.certFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("webServer.tls.certFile %s: no PEM certificate in it", cfg.TLS.CertFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	return &Client{base: scheme + "://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)), cfg: cfg,
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// do sends a request and decodes a 200 answer into out.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	defer c.http.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.cfg.User != "" || c.cfg.Password != "" {
		req.SetBasicAuth(c.cfg.User, c.cfg.Password)
	}
	resp, err := c.http.Do(req)
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return fmt.Errorf("%w at %s: %v; webServer.tls.certFile must be the certificate the running hopc serves", ErrUnreachable, c.base, cve)
	}
	if err != nil {
		return fmt.Errorf("%w at %s: %v; is hopc running with webServer.port = %d?", ErrUnreachable, c.base, err, c.cfg.Port)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%w at %s: reading the answer: %v", ErrUnreachable, c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg = "wrong or missing webServer.user / webServer.password (they must match the running hopc's)"
		}
		return fmt.Errorf("%w (%s %s: %s): %s", ErrAPI, method, path, resp.Status, msg)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON: %v", method, path, err)
	}
	return nil
}

// Status is GET /api/status.
func (c *Client) Status(ctx context.Context) (client.Status, error) {
	var s client.Status
	err := c.do(ctx, "GET", "/api/status", &s)
	return s, err
}

// Reload is POST /api/reload; it returns the answer's JSON object.
func (c *Client) Reload(ctx context.Context) (map[string]any, error) {
	var res map[string]any
	err := c.do(ctx, "POST", "/api/reload", &res)
	return res, err
}

// Stop is POST /api/stop.
func (c *Client) Stop(ctx context.Context) error { return c.do(ctx, "POST", "/api/stop", nil) }

// WriteStatus prints s as hopc status does: a line about the session,
// then one aligned row per proxy and visitor.
func WriteStatus(w io.Writer, s client.Status) error {
	state := "online"
	if !s.Online {
		state = "offline"
	}
	fmt.Fprintf(w, "client %s, server %s: %s", s.ClientID, s.Server, state)
	if s.LastError != "" {
		fmt.Fprintf(w, " (last error: %s)", s.LastError)
	}
	fmt.Fprintln(w)
	if len(s.Nodes) > 1 || (len(s.Nodes) == 1 && s.Nodes[0].Stopped) {
		for _, n := range s.Nodes {
			state := "online"
			switch {
			case n.Stopped:
				state = "stopped"
			case !n.Online:
				state = "offline"
			}
			fmt.Fprintf(w, "node %s", n.Name)
			if n.Addr != n.Name {
				fmt.Fprintf(w, " (%s)", n.Addr)
			}
			fmt.Fprintf(w, ": %s", state)
			if n.LastError != "" && state != "online" {
				fmt.Fprintf(w, " (last error: %s)", n.LastError)
			}
			fmt.Fprintln(w)
		}
	}
	if h := s.Heartbeat; h != nil {
		ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
		switch {
		case h.Learned && h.FailedMs > 0:
			fmt.Fprintf(w, "heartbeat auto: path forgets idle TCP after %v-%v; using %v\n", ms(h.SurvivedMs), ms(h.FailedMs), ms(h.IntervalMs))
		case h.Learned:
			fmt.Fprintf(w, "heartbeat auto: path keeps idle TCP at least %v; using %v\n", ms(h.SurvivedMs), ms(h.IntervalMs))
		default:
			fmt.Fprintf(w, "heartbeat auto: learning (%d probes so far); using %v\n", h.Probes, ms(h.IntervalMs))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSTATE\tREMOTE/PATH\tERROR\tNEXT RETRY")
	for _, p := range s.Proxies {
		remote := p.RemoteAddr
		if remote == "" && len(p.Domains) > 0 { // http, https
			remote = strings.Join(p.Domains, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Type, p.State, dash(remote), dash(p.Error), dash(p.NextRetry))
	}
	for _, v := range s.Visitors {
		path := v.Path
		if v.Keepalive != "" && v.Path != "" {
			path += ", keepalive " + v.Keepalive
		}
		fmt.Fprintf(tw, "%s\t%s visitor\t%s\t%s\t%s\t%s\n", v.Name, v.Type, v.State, dash(path), dash(v.Error), "-")
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, "\t", " ")
}
