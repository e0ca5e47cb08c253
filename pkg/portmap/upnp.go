package portmap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// SSDP search targets, asked one after the other (never at once: some
// routers answer neither when asked both together, go-libp2p issue 3138).
const (
	stIGDv2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
	stIGDv1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
)

// Limits on what a gateway's HTTP server may send.
const (
	maxSSDPLen     = 4096
	maxHTTPBody    = 1 << 20
	maxHTTPHeaders = 64 << 10
)

// UPnP error codes (WANIPConnection:2 spec, section 2.4).
const (
	upnpConflict        = 718 // ConflictInMappingEntry
	upnpOnlyPermanent   = 725 // OnlyPermanentLeasesSupported
	upnpNoSuchEntry     = 714 // NoSuchEntryInArray
	upnpConflictWithOth = 729 // ConflictWithOtherMechanisms
	upnpInvalidAction   = 401 // Invalid Action
	upnpNotImplemented  = 602 // Optional Action Not Implemented
)

// igd is one WAN connection service of an Internet Gateway Device.
type igd struct {
	service  string // "WANIPConnection:2", "WANIPConnection:1", "WANPPPConnection:1"
	location string
	control  string // the service's control URL
	// addAny is nil for services without AddAnyPortMapping (version 1).
	addAny func(ctx context.Context, ext uint16, proto string, internal uint16, client, desc string, lease uint32) (uint16, error)
	add    func(ctx context.Context, ext uint16, proto string, internal uint16, client, desc string, lease uint32) error
	del    func(ctx context.Context, ext uint16, proto string) error
	extIP  func(ctx context.Context) (string, error)
}

// newHTTPClient returns the client for the gateway's UPnP HTTP server: it
// dials through Config.Net, only to the current gateway, never through a
// proxy, follows no redirect, and bounds time and sizes.
func (c *Client) newHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, fmt.Errorf("portmap: UPnP address %q is not ip:port: %w", addr, err)
			}
			if gw := c.currentGateway(); !gw.IsValid() || ap.Addr().Unmap() != gw {
				return nil, fmt.Errorf("%w: UPnP URL points at %s, not at the gateway %s", ErrRefused, ap.Addr(), gw)
			}
			return c.cfg.Net.DialContext(ctx, network, addr)
		},
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  c.cfg.Timeout,
		MaxResponseHeaderBytes: maxHTTPHeaders,
	}
	return &http.Client{
		Transport: limitBody{tr},
		Timeout:   c.cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return fmt.Errorf("%w: the gateway's UPnP server redirects", ErrRefused)
		},
	}
}

// limitBody caps response bodies at maxHTTPBody.
type limitBody struct{ rt http.RoundTripper }

func (l limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxHTTPBody), resp.Body}
	return resp, nil
}

// parseSSDPResponse decodes one SSDP search response (an HTTP/1.1 response
// over UDP) and returns its LOCATION if it answers search target st.
func parseSSDPResponse(b []byte, st string) (*url.URL, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: SSDP response: %v", ErrMalformed, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: SSDP response status %q", ErrMalformed, resp.Status)
	}
	if got := resp.Header.Get("ST"); got != st {
		return nil, fmt.Errorf("%w: SSDP response for ST %q, want %q", ErrMalformed, got, st)
	}
	loc := resp.Header.Get("LOCATION")
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: SSDP LOCATION %q: %v", ErrMalformed, loc, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%w: SSDP LOCATION %q, want an http:// URL", ErrMalformed, loc)
	}
	return u, nil
}

// ssdpSearch multicasts an M-SEARCH for st and returns the LOCATION of the
// first answer from the gateway whose URL also points at the gateway.
func (c *Client) ssdpSearch(ctx context.Context, gw netip.Addr, st string) (*url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	pc, err := c.cfg.Net.ListenPacket(ctx, "udp4", ":0")
	if err != nil {
		return nil, fmt.Errorf("SSDP socket: %w", err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := []byte("M-SEARCH * HTTP/1.1\r\n" +
		"HOST: 239.255.255.250:1900\r\n" +
		"MAN: \"ssdp:discover\"\r\n" +
		"MX: 1\r\n" +
		"ST: " + st + "\r\n\r\n")
	dst := net.UDPAddrFromAddrPort(c.ssdpAddr)
	buf := make([]byte, maxSSDPLen)
	wait := 300 * time.Millisecond
	var lastErr error
	for {
		if _, err := pc.WriteTo(req, dst); err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, fmt.Errorf("SSDP M-SEARCH to %s: %w", dst, err)
		}
		pc.SetReadDeadline(time.Now().Add(wait))
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
					break
				}
				if ctx.Err() != nil {
					return nil, c.ssdpUnanswered(st, lastErr)
				}
				return nil, fmt.Errorf("SSDP: %w", err)
			}
			ua, ok := from.(*net.UDPAddr)
			if !ok || ua.AddrPort().Addr().Unmap() != gw {
				continue // another host's answer: we only map on the gateway
			}
			u, err := parseSSDPResponse(buf[:n], st)
			if err != nil {
				lastErr = err
				continue
			}
			if h, perr := netip.ParseAddr(u.Hostname()); perr != nil || h.Unmap() != gw {
				lastErr = fmt.Errorf("%w: SSDP LOCATION %s is not on the gateway %s", ErrRefused, u, gw)
				continue
			}
			return u, nil
		}
		wait *= 2
	}
	return nil, c.ssdpUnanswered(st, lastErr)
}

func (c *Client) ssdpUnanswered(st string, lastErr error) error {
	if lastErr != nil {
		return fmt.Errorf("SSDP %s: %w", st, lastErr)
	}
	return fmt.Errorf("%w to SSDP %s within %v", errUnanswered, st, c.cfg.Timeout)
}

// fetchRoot downloads and decodes a device description.
func (c *Client) fetchRoot(ctx context.Context, loc *url.URL) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device description %s: %w", loc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: device description %s: HTTP %s", ErrRefused, loc, resp.Status)
	}
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(resp.Body)
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("%w: device description %s: %v", ErrMalformed, loc, err)
	}
	base := loc
	if root.URLBaseStr != "" {
		if base, err = url.Parse(root.URLBaseStr); err != nil {
			return nil, fmt.Errorf("%w: device description %s: URLBase %q: %v", ErrMalformed, loc, root.URLBaseStr, err)
		}
	}
	root.SetURLBase(base)
	return root, nil
}

// wanConnection is what goupnp's WANIPConnection2, WANIPConnection1 and
// WANPPPConnection1 clients have in common.
type wanConnection interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, ext uint16, proto string, internal uint16, client string, enabled bool, desc string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, ext uint16, proto string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// newIGD is the igd of one WAN connection service.
func newIGD(service string, loc *url.URL, control url.URL, s wanConnection) *igd {
	return &igd{
		service: service, location: loc.String(), control: control.String(),
		add: func(ctx context.Context, ext uint16, proto string, internal uint16, client, desc string, lease uint32) error {
			return s.AddPortMappingCtx(ctx, "", ext, proto, internal, client, true, desc, lease)
		},
		del: func(ctx context.Context, ext uint16, proto string) error {
			return s.DeletePortMappingCtx(ctx, "", ext, proto)
		},
		extIP: s.GetExternalIPAddressCtx,
	}
}

// pickService returns the first WAN connection service of root, in the
// order WANIPConnection:2, WANIPConnection:1, WANPPPConnection:1.
func (c *Client) pickService(root *goupnp.RootDevice, loc *url.URL) *igd {
	hc := *c.http
	if v2, _ := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); len(v2) > 0 {
		s := v2[0]
		s.SOAPClient.HTTPClient = hc
		g := newIGD("WANIPConnection:2", loc, s.SOAPClient.EndpointURL, s)
		g.addAny = func(ctx context.Context, ext uint16, proto string, internal uint16, client, desc string, lease uint32) (uint16, error) {
			return s.AddAnyPortMappingCtx(ctx, "", ext, proto, internal, client, true, desc, lease)
		}
		return g
	}
	if v1, _ := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); len(v1) > 0 {
		s := v1[0]
		s.SOAPClient.HTTPClient = hc
		return newIGD("WANIPConnection:1", loc, s.SOAPClient.EndpointURL, s)
	}
	if ppp, _ := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); len(ppp) > 0 {
		s := ppp[0]
		s.SOAPClient.HTTPClient = hc
		return newIGD("WANPPPConnection:1", loc, s.SOAPClient.EndpointURL, s)
	}
	return nil
}

// discoverIGD finds the gateway's IGD: SSDP for IGDv2, then (only after
// that search ended) for IGDv1, and the first WAN connection service of the
// device that answered. With op held.
func (c *Client) discoverIGD(ctx context.Context, gw netip.Addr) (*igd, error) {
	c.mu.Lock()
	cached := c.igd
	c.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	var errs []error
	for _, st := range []string{stIGDv2, stIGDv1} {
		loc, err := c.ssdpSearch(ctx, gw, st)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		root, err := c.fetchRoot(ctx, loc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		g := c.pickService(root, loc)
		if g == nil {
			errs = append(errs, fmt.Errorf("%w: %s (%s) has no WANIPConnection or WANPPPConnection service", ErrUnsupported, loc, st))
			continue
		}
		c.mu.Lock()
		c.igd = g
		c.mu.Unlock()
		return g, nil
	}
	return nil, errors.Join(errs...)
}

// upnpCode returns the UPnP error code of a SOAP fault, or 0.
func upnpCode(err error) int {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		return f.Detail.UPnPError.Errorcode
	}
	return 0
}

// upnpErr classifies an error of a SOAP call.
func upnpErr(action string, err error) error {
	if code := upnpCode(err); code != 0 {
		var f *soap.SOAPFaultError
		errors.As(err, &f)
		return fmt.Errorf("%w: UPnP %s: error %d (%s)", ErrRefused, action, code, f.Detail.UPnPError.ErrorDescription)
	}
	return fmt.Errorf("UPnP %s: %w", action, err)
}

// upnpMap adds (lifetime > 0) or deletes (0) m's mapping on the IGD. A
// mapping already made is re-added on the same external port, which renews
// its lease.
//
// When a new mapping fails at the IGD found earlier otherwise than with a
// UPnP error (its HTTP server refuses connections or answers 404: a
// restarted miniupnpd listens on another port, go-libp2p issue 3224), the
// gateway is searched again and the request sent once more to the IGD
// found; if that works, the gateway has restarted or moved, so every other
// mapping is re-created. (A failed renewal does the same through the
// renewal loop.) With op held.
func (c *Client) upnpMap(ctx context.Context, gw, local netip.Addr, m *mapping, lifetime uint32) (Mapping, error) {
	c.mu.Lock()
	cached := c.igd
	creating := !m.active()
	c.mu.Unlock()
	res, err := c.upnpMapOnce(ctx, gw, local, m, lifetime)
	if err == nil || cached == nil || !creating || lifetime == 0 || upnpCode(err) != 0 || ctx.Err() != nil {
		return res, err
	}
	c.mu.Lock()
	if c.igd == cached {
		c.igd = nil
	}
	c.mu.Unlock()
	res, err2 := c.upnpMapOnce(ctx, gw, local, m, lifetime)
	if err2 != nil {
		return Mapping{}, fmt.Errorf("%w; after searching the gateway again: %w", err, err2)
	}
	// The gateway failed, then answered when found again: it restarted
	// or moved (a restarted miniupnpd has no mapping left, and its HTTP
	// port may change), so the other mappings are likely gone too.
	c.mu.Lock()
	control := ""
	if c.igd != nil {
		control = c.igd.control
	}
	others := 0
	for _, o := range c.maps {
		if o != m && o.active() {
			others++
		}
	}
	if others > 0 {
		c.reset, c.resetKnown = true, true // a search now would only find the IGD again (and take seconds)
	}
	c.mu.Unlock()
	msg := "UPnP gateway failed at its control URL and was found again"
	if others > 0 {
		msg += "; re-creating every mapping"
		c.poke()
	}
	c.log.Warn(msg, "gateway", gw, "old", cached.control, "new", control, "err", err)
	return res, nil
}

// upnpMapOnce is upnpMap with the IGD found now or earlier. With op held.
func (c *Client) upnpMapOnce(ctx context.Context, gw, local netip.Addr, m *mapping, lifetime uint32) (Mapping, error) {
	if m.key.remote.IsValid() {
		return Mapping{}, fmt.Errorf("%w: UPnP IGD has no PEER", ErrUnsupported)
	}
	g, err := c.discoverIGD(ctx, gw)
	if err != nil {
		return Mapping{}, err
	}
	proto := strings.ToUpper(m.key.proto)
	c.mu.Lock()
	prev := m.cur
	c.mu.Unlock()
	if lifetime == 0 {
		if !prev.External.IsValid() {
			return Mapping{}, nil
		}
		if err := g.del(ctx, prev.External.Port(), proto); err != nil && upnpCode(err) != upnpNoSuchEntry {
			return Mapping{}, upnpErr("DeletePortMapping", err)
		}
		return Mapping{}, nil
	}
	client := local.String()
	desc := c.cfg.Description
	lease := lifetime
	ext := m.key.port
	renew := prev.External.IsValid() && prev.Method == MethodUPnP
	if renew {
		ext = prev.External.Port()
	}
	if renew && prev.Lifetime == 0 {
		lease = 0 // the gateway only does permanent leases
	}

	addOnce := func(port uint16, lease uint32) (uint16, error) {
		if g.addAny != nil && !renew {
			got, err := g.addAny(ctx, port, proto, m.key.port, client, desc, lease)
			// Some gateways list WANIPConnection:2 but do not implement
			// AddAnyPortMapping: fall back to AddPortMapping.
			if code := upnpCode(err); code != upnpInvalidAction && code != upnpNotImplemented {
				return got, err
			}
		}
		return port, g.add(ctx, port, proto, m.key.port, client, desc, lease)
	}
	var got uint16
	for try := 0; ; try++ {
		got, err = addOnce(ext, lease)
		code := upnpCode(err)
		if code == upnpOnlyPermanent && lease != 0 {
			lease = 0
			got, err = addOnce(ext, lease)
			code = upnpCode(err)
		}
		if (code == upnpConflict || code == upnpConflictWithOth) && !renew && try < 3 {
			ext = uint16(1024 + rand.N(65535-1024))
			continue
		}
		break
	}
	if err != nil {
		return Mapping{}, upnpErr("AddPortMapping", err)
	}
	if got == 0 {
		got = ext
	}
	ipText, err := g.extIP(ctx)
	if err != nil {
		return Mapping{}, upnpErr("GetExternalIPAddress", err)
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(ipText))
	if err != nil || !ip.Unmap().Is4() || ip.IsUnspecified() {
		return Mapping{}, fmt.Errorf("%w: UPnP GetExternalIPAddress returned %q", ErrMalformed, ipText)
	}
	return Mapping{
		External: netip.AddrPortFrom(ip.Unmap(), got),
		Lifetime: time.Duration(lease) * time.Second,
	}, nil
}

// upnpProbe discovers the IGD and reads its external address.
func (c *Client) upnpProbe(ctx context.Context, gw netip.Addr) (service string, ext netip.Addr, err error) {
	g, err := c.discoverIGD(ctx, gw)
	if err != nil {
		return "", netip.Addr{}, err
	}
	ipText, err := g.extIP(ctx)
	if err != nil {
		return g.service, netip.Addr{}, upnpErr("GetExternalIPAddress", err)
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(ipText))
	if err != nil {
		return g.service, netip.Addr{}, fmt.Errorf("%w: UPnP GetExternalIPAddress returned %q", ErrMalformed, ipText)
	}
	return g.service, ip.Unmap(), nil
}
