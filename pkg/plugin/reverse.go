package plugin

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/transport"
)

// HTTPS2HTTP and HTTP2HTTPS are reverse proxies in front of one backend:
// https2http terminates TLS with its own certificate and speaks HTTP to
// the backend; http2https takes plain HTTP and speaks HTTPS to it. Both
// may rewrite the Host header and set request headers, and add
// X-Forwarded-For (the user's address), X-Forwarded-Host and
// X-Forwarded-Proto.

// reverse is the part both share.
type reverse struct {
	*httpServe
	tr *http.Transport
}

func newReverse(cfg config.PluginConfig, scheme string, tr *http.Transport, log *slog.Logger, wrap func(net.Conn) net.Conn) *reverse {
	target := &url.URL{Scheme: scheme, Host: cfg.LocalAddr}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			if cfg.HostHeaderRewrite != "" {
				pr.Out.Host = cfg.HostHeaderRewrite
			}
			for k, v := range cfg.RequestHeaders.Set {
				pr.Out.Header.Set(k, v)
			}
		},
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}
	return &reverse{httpServe: newHTTPServe(rp, log, wrap), tr: tr}
}

// Close implements Handler.
func (r *reverse) Close() error {
	r.httpServe.Close()
	r.tr.CloseIdleConnections()
	return nil
}

func backendTransport(d *net.Dialer) *http.Transport {
	return &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: HandshakeTimeout,
	}
}

// HTTPS2HTTP is the https2http plugin.
type HTTPS2HTTP struct{ *reverse }

// NewHTTPS2HTTP loads the certificate and key of cfg (CrtPath, KeyPath),
// or generates a self-signed certificate when both are empty, and returns the plugin for the HTTP backend cfg.LocalAddr.
func NewHTTPS2HTTP(cfg config.PluginConfig, log *slog.Logger) (*HTTPS2HTTP, error) {
	var tc *tls.Config
	if cfg.CrtPath == "" && cfg.KeyPath == "" {
		var fp string
		var err error
		if tc, fp, err = transport.ServerTLS("", ""); err != nil {
			return nil, fmt.Errorf("https2http: %w", err)
		}
		log.Warn("https2http: no crtPath and keyPath: serving a generated self-signed certificate (clients must skip verification or pin it)", "sha256", fp)
	} else {
		cert, err := tls.LoadX509KeyPair(cfg.CrtPath, cfg.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("https2http: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	tc.NextProtos, tc.MinVersion = []string{"http/1.1"}, tls.VersionTLS12
	wrap := func(c net.Conn) net.Conn { return tls.Server(c, tc) }
	return &HTTPS2HTTP{newReverse(cfg, "http", backendTransport(&net.Dialer{Timeout: DialTimeout}), log, wrap)}, nil
}

// HTTP2HTTPS is the http2https plugin. As frp's, it does not verify the
// backend's certificate: local HTTPS services mostly have self-signed
// ones, and the backend is on this host or its network.
type HTTP2HTTPS struct{ *reverse }

// NewHTTP2HTTPS returns the plugin for the HTTPS backend cfg.LocalAddr.
func NewHTTP2HTTPS(cfg config.PluginConfig, log *slog.Logger) *HTTP2HTTPS {
	tr := backendTransport(&net.Dialer{Timeout: DialTimeout})
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	return &HTTP2HTTPS{newReverse(cfg, "https", tr, log, nil)}
}
