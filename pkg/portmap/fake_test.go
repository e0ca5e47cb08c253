package portmap

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGW is a PCP and NAT-PMP server on loopback.
type fakeGW struct {
	pc   net.PacketConn
	done chan struct{}

	mu     sync.Mutex
	mode   string    // "pcp" (PCP and NAT-PMP), "pmp" (NAT-PMP only), "refuse", "silent"
	base   time.Time // epoch = now - base
	ext    netip.Addr
	maps   map[string]uint32 // "udp/4000" -> lifetime of the live mapping
	reqs   []fakeReq
	heard  int // packets received, answered or not
	nonces map[string][12]byte
}

type fakeReq struct {
	pcp      bool
	op       byte
	port     uint16
	lifetime uint32
	nonce    [12]byte
}

func newFakeGW(t *testing.T, mode string) *fakeGW {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGW{
		pc: pc, done: make(chan struct{}), mode: mode,
		base: time.Now().Add(-1000 * time.Second), ext: netip.MustParseAddr("203.0.113.7"),
		maps: map[string]uint32{}, nonces: map[string][12]byte{},
	}
	go g.serve()
	t.Cleanup(func() { pc.Close(); <-g.done })
	return g
}

func (g *fakeGW) port() uint16 { return uint16(g.pc.LocalAddr().(*net.UDPAddr).Port) }

func (g *fakeGW) setMode(m string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode = m
}

// reboot forgets every mapping and restarts the epoch from 0.
func (g *fakeGW) reboot() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.base = time.Now()
	g.maps = map[string]uint32{}
}

func (g *fakeGW) requests() []fakeReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]fakeReq(nil), g.reqs...)
}

func (g *fakeGW) packets() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.heard
}

func (g *fakeGW) live(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.maps[key]
	return ok
}

func (g *fakeGW) serve() {
	defer close(g.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := g.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := g.answer(buf[:n]); out != nil {
			g.pc.WriteTo(out, from)
		}
	}
}

func (g *fakeGW) answer(b []byte) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	epoch := uint32(time.Since(g.base) / time.Second)
	g.heard++
	if g.mode == "silent" || len(b) < 2 {
		return nil
	}
	switch b[0] {
	case pcpVersion:
		if g.mode == "pmp" { // RFC 6887 section 9: NAT-PMP's UNSUPP_VERSION
			out := make([]byte, 8)
			out[1] = 128 + b[1]
			binary.BigEndian.PutUint16(out[2:], pmpUnsupportedVersion)
			binary.BigEndian.PutUint32(out[4:], epoch)
			return out
		}
		if len(b) < pcpHeaderLen {
			return nil
		}
		op := b[1]
		lifetime := binary.BigEndian.Uint32(b[4:])
		out := make([]byte, pcpHeaderLen, pcpHeaderLen+pcpMapLen)
		out[0], out[1] = pcpVersion, op|pcpReplyBit
		binary.BigEndian.PutUint32(out[8:], epoch)
		if g.mode == "refuse" {
			out[3] = pcpNotAuthorized
			return out
		}
		if op == pcpOpAnnounce {
			g.reqs = append(g.reqs, fakeReq{pcp: true, op: op})
			return out
		}
		if op != pcpOpMap || len(b) < pcpHeaderLen+pcpMapLen {
			out[3] = pcpUnsuppOpcode
			return out
		}
		p := b[pcpHeaderLen:]
		port := binary.BigEndian.Uint16(p[16:])
		proto := "udp"
		if p[12] == protoNumTCP {
			proto = "tcp"
		}
		var nonce [12]byte
		copy(nonce[:], p[:12])
		g.reqs = append(g.reqs, fakeReq{pcp: true, op: op, port: port, lifetime: lifetime, nonce: nonce})
		key := fmt.Sprintf("%s/%d", proto, port)
		if old, ok := g.nonces[key]; ok && old != nonce && g.maps[key] > 0 {
			out[3] = pcpNotAuthorized // another client's mapping
			return out
		}
		g.nonces[key] = nonce
		if lifetime == 0 {
			delete(g.maps, key)
		} else {
			g.maps[key] = lifetime
		}
		binary.BigEndian.PutUint32(out[4:], lifetime)
		out = out[:pcpHeaderLen+pcpMapLen]
		copy(out[pcpHeaderLen:], p[:20]) // nonce, protocol, internal port
		binary.BigEndian.PutUint16(out[pcpHeaderLen+18:], port)
		put16(out[pcpHeaderLen+20:], g.ext)
		return out
	case pmpVersion:
		op := b[1]
		if g.mode == "refuse" {
			out := make([]byte, 8)
			out[1] = pmpReplyBit + op
			binary.BigEndian.PutUint16(out[2:], pmpNotAuthorized)
			return out
		}
		switch {
		case op == pmpOpExternal:
			g.reqs = append(g.reqs, fakeReq{op: op})
			out := make([]byte, pmpExternalLen)
			out[1] = pmpReplyBit
			binary.BigEndian.PutUint32(out[4:], epoch)
			a := g.ext.As4()
			copy(out[8:], a[:])
			return out
		case (op == pmpOpMapUDP || op == pmpOpMapTCP) && len(b) >= 12:
			port := binary.BigEndian.Uint16(b[4:])
			lifetime := binary.BigEndian.Uint32(b[8:])
			g.reqs = append(g.reqs, fakeReq{op: op, port: port, lifetime: lifetime})
			key := fmt.Sprintf("%s/%d", map[byte]string{1: "udp", 2: "tcp"}[op], port)
			if lifetime == 0 {
				delete(g.maps, key)
			} else {
				g.maps[key] = lifetime
			}
			out := make([]byte, pmpMapLen)
			out[1] = pmpReplyBit + op
			binary.BigEndian.PutUint32(out[4:], epoch)
			binary.BigEndian.PutUint16(out[8:], port)
			binary.BigEndian.PutUint16(out[10:], port)
			binary.BigEndian.PutUint32(out[12:], lifetime)
			return out
		}
	}
	return nil
}

// fakeIGD is an SSDP responder and a UPnP IGD HTTP server with one
// WANIPConnection:1 service, on loopback.
type fakeIGD struct {
	ssdp net.PacketConn
	srv  *httptest.Server
	done chan struct{}

	mu      sync.Mutex
	answer  string // the ST answered; "" answers none
	service string // the WAN connection service type advertised
	sts     []string
	actions []string
	maps    map[string]string // "UDP/4000" -> internal client
}

func newFakeIGD(t *testing.T, answer string) *fakeIGD {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIGD{ssdp: pc, done: make(chan struct{}), answer: answer, maps: map[string]string{},
		service: "urn:schemas-upnp-org:service:WANIPConnection:1"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	go f.serveSSDP()
	t.Cleanup(func() {
		pc.Close()
		<-f.done
		f.mu.Lock()
		srv := f.srv
		f.mu.Unlock()
		srv.Close()
	})
	return f
}

// reboot moves the HTTP server to a new port (a new control URL) and
// forgets every mapping, as a router restart does.
func (f *fakeIGD) reboot() {
	f.mu.Lock()
	old := f.srv
	f.maps = map[string]string{}
	f.mu.Unlock()
	old.Close()
	srv := httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
}

func (f *fakeIGD) mapped(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.maps[key]
	return ok
}

func (f *fakeIGD) ssdpAddr() netip.AddrPort { return f.ssdp.LocalAddr().(*net.UDPAddr).AddrPort() }

func (f *fakeIGD) serveSSDP() {
	defer close(f.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := f.ssdp.ReadFrom(buf)
		if err != nil {
			return
		}
		var st string
		for _, line := range strings.Split(string(buf[:n]), "\r\n") {
			if v, ok := strings.CutPrefix(line, "ST: "); ok {
				st = v
			}
		}
		f.mu.Lock()
		f.sts = append(f.sts, st)
		ok := st == f.answer
		url := f.srv.URL
		f.mu.Unlock()
		if ok {
			fmt.Fprintf(writerTo{f.ssdp, from}, "HTTP/1.1 200 OK\r\nST: %s\r\nUSN: uuid:fake::%s\r\nLOCATION: %s/rootDesc.xml\r\n\r\n", st, st, url)
		}
	}
}

type writerTo struct {
	pc net.PacketConn
	to net.Addr
}

func (w writerTo) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.to) }

const fakeRootDesc = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>fake</friendlyName><UDN>uuid:fake</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><UDN>uuid:fake-wan</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><UDN>uuid:fake-wanconn</UDN>
<serviceList><service><serviceType>%s</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl</controlURL><eventSubURL>/evt</eventSubURL><SCPDURL>/scpd.xml</SCPDURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`

func soapReply(action, inner string) string {
	return `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>` +
		`<u:` + action + `Response xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">` + inner + `</u:` + action + `Response></s:Body></s:Envelope>`
}

func xmlField(body, name string) string {
	_, rest, ok := strings.Cut(body, "<"+name+">")
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, "</"+name+">")
	return v
}

func (f *fakeIGD) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/rootDesc.xml":
		f.mu.Lock()
		service := f.service
		f.mu.Unlock()
		fmt.Fprintf(w, fakeRootDesc, service)
		return
	case "/ctl":
	default:
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	action := r.Header.Get("SOAPACTION")
	_, action, _ = strings.Cut(strings.Trim(action, `"`), "#")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, action)
	key := xmlField(string(body), "NewProtocol") + "/" + xmlField(string(body), "NewExternalPort")
	switch action {
	case "AddPortMapping":
		f.maps[key] = xmlField(string(body), "NewInternalClient")
		io.WriteString(w, soapReply(action, ""))
	case "DeletePortMapping":
		delete(f.maps, key)
		io.WriteString(w, soapReply(action, ""))
	case "GetExternalIPAddress":
		io.WriteString(w, soapReply(action, "<NewExternalIPAddress>203.0.113.9</NewExternalIPAddress>"))
	default:
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>401</errorCode><errorDescription>Invalid Action</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`)
	}
}
