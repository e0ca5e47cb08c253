package protocol

import (
	"fmt"
	"strings"
)

// The vhost proxy types: served on the server's shared vhostHTTPPort and
// vhostHTTPSPort, routed by domain (NewProxy.CustomDomains, Subdomain).
const (
	ProxyHTTP  = "http"
	ProxyHTTPS = "https"
	// ProxyTCPMux is served on the server's tcpmuxHTTPConnectPort: HTTP
	// CONNECT tunnels routed by the CONNECT host (NewProxy.Multiplexer
	// "httpconnect").
	ProxyTCPMux = "tcpmux"
)

// MultiplexerHTTPConnect is the one NewProxy.Multiplexer of a tcpmux
// proxy.
const MultiplexerHTTPConnect = "httpconnect"

// Codes of NewProxyResp for vhost proxies.
const (
	// CodeVhostDisabled: the server has no vhost port for this type, or
	// no subDomainHost for a subdomain. Permanent: it needs the server's
	// config changed.
	CodeVhostDisabled = "vhost_disabled"
	// CodeDomainInUse: another proxy (of this client or another) serves
	// one of the domains and locations. Retryable: it is freed when that
	// proxy goes.
	CodeDomainInUse = "domain_in_use"
)

// Bounds of the vhost fields of NewProxy.
const (
	MaxDomains      = 64   // CustomDomains
	MaxLocations    = 64   // Locations
	MaxHeaderSets   = 64   // RequestHeaders, ResponseHeaders (each)
	MaxVhostField   = 1024 // each string: a location, header name or value, user, password
	maxDomainLength = 253
)

// validateVhost checks the vhost fields of m: allowed only on http,
// https and tcpmux (the header and auth fields on http only, but for the
// auth fields on tcpmux), within the bounds.
func (m *NewProxy) validateVhost() error {
	vhost := m.ProxyType == ProxyHTTP || m.ProxyType == ProxyHTTPS || m.ProxyType == ProxyTCPMux
	auth := m.HTTPUser != "" || m.HTTPPassword != "" || m.RouteByHTTPUser != ""
	httpOnly := len(m.Locations) > 0 || m.HostHeaderRewrite != "" || len(m.RequestHeaders) > 0 || len(m.ResponseHeaders) > 0
	switch {
	case !vhost && (len(m.CustomDomains) > 0 || m.Subdomain != "" || httpOnly || auth):
		return fmt.Errorf("a %s proxy has no domains, locations or http settings", m.ProxyType)
	case m.Multiplexer != "" && m.ProxyType != ProxyTCPMux:
		return fmt.Errorf("a %s proxy has no multiplexer", m.ProxyType)
	case !vhost:
		return nil
	case m.ProxyType == ProxyHTTPS && (httpOnly || auth):
		return fmt.Errorf("an https proxy has no locations or http settings")
	case m.ProxyType == ProxyTCPMux && httpOnly:
		return fmt.Errorf("a tcpmux proxy has no locations or header settings")
	case m.ProxyType == ProxyTCPMux && m.Multiplexer != MultiplexerHTTPConnect:
		return fmt.Errorf("multiplexer %q of a tcpmux proxy is not %q", m.Multiplexer, MultiplexerHTTPConnect)
	case m.RemotePort != 0:
		return fmt.Errorf("a %s proxy has no remote port", m.ProxyType)
	case len(m.CustomDomains) == 0 && m.Subdomain == "":
		return fmt.Errorf("a %s proxy needs customDomains or a subdomain", m.ProxyType)
	case len(m.CustomDomains) > MaxDomains:
		return fmt.Errorf("%d customDomains, at most %d", len(m.CustomDomains), MaxDomains)
	case len(m.Locations) > MaxLocations:
		return fmt.Errorf("%d locations, at most %d", len(m.Locations), MaxLocations)
	case len(m.RequestHeaders) > MaxHeaderSets || len(m.ResponseHeaders) > MaxHeaderSets:
		return fmt.Errorf("more than %d headers to set", MaxHeaderSets)
	}
	for _, d := range m.CustomDomains {
		if err := CheckDomain(d); err != nil {
			return err
		}
	}
	if m.Subdomain != "" {
		if err := CheckDomain(m.Subdomain); err != nil || strings.ContainsAny(m.Subdomain, ".*") {
			return fmt.Errorf("subdomain %q is not one label of a-z 0-9 -", m.Subdomain)
		}
	}
	for _, l := range m.Locations {
		if !strings.HasPrefix(l, "/") || len(l) > MaxVhostField || strings.ContainsAny(l, "\x00\r\n") {
			return fmt.Errorf("location %q is not a path prefix", l)
		}
	}
	for _, s := range []string{m.HTTPUser, m.HTTPPassword, m.RouteByHTTPUser, m.HostHeaderRewrite} {
		if len(s) > MaxVhostField || strings.ContainsAny(s, "\x00\r\n") {
			return fmt.Errorf("an http setting is longer than %d bytes or has a line break", MaxVhostField)
		}
	}
	for _, hs := range []map[string]string{m.RequestHeaders, m.ResponseHeaders} {
		for k, v := range hs {
			if k == "" || len(k) > MaxVhostField || len(v) > MaxVhostField || strings.ContainsAny(k, " :\x00\r\n\t") || strings.ContainsAny(v, "\x00\r\n") {
				return fmt.Errorf("header %q is not a header name and one-line value", k)
			}
		}
	}
	return nil
}

// CheckDomain accepts a lower-case host name of a-z 0-9 - and ., with an
// optional leading "*." (a wildcard), at most 253 bytes.
func CheckDomain(d string) error {
	name := strings.TrimPrefix(d, "*.")
	if name == "" || len(d) > maxDomainLength {
		return fmt.Errorf("domain %q is empty or too long", d)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %q is not a host name", d)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q is not a lower-case host name", d)
			}
		}
	}
	return nil
}
