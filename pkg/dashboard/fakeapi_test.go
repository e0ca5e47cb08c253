package dashboard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The JSON shapes of the hops and hopc APIs, as the issue-10 contract
// writes them; the fake servers below answer with them.

type serverInfo struct {
	Version          string    `json:"version"`
	BindPort         int       `json:"bindPort"`
	StartedAt        time.Time `json:"startedAt"`
	UptimeSeconds    int64     `json:"uptimeSeconds"`
	ClientsConnected int       `json:"clientsConnected"`
	Proxies          int       `json:"proxies"`
	EnablePrometheus bool      `json:"enablePrometheus"`
}

type loss struct {
	At    time.Time `json:"at"`
	Cause string    `json:"cause"`
}

type clientRow struct {
	User           string    `json:"user"`
	ClientID       string    `json:"clientID"`
	Addr           string    `json:"addr"`
	Online         bool      `json:"online"`
	NATClass       string    `json:"natClass"`
	HeartbeatRttMs float64   `json:"heartbeatRttMs"`
	ConnectedAt    time.Time `json:"connectedAt"`
	UptimeSeconds  int64     `json:"uptimeSeconds"`
	Sessions       int       `json:"sessions"`
	Proxies        []string  `json:"proxies"`
	Losses         []loss    `json:"losses"`
}

type proxyRow struct {
	Name       string `json:"name"`
	User       string `json:"user"`
	ClientID   string `json:"clientID"`
	Type       string `json:"type"`
	RemotePort int    `json:"remotePort"`
	State      string `json:"state"`
	ConnsOpen  int    `json:"connsOpen"`
	ConnsTotal int64  `json:"connsTotal"`
	BytesIn    int64  `json:"bytesIn"`
	BytesOut   int64  `json:"bytesOut"`
}

// pairStats is server.PairStats as JSON.
type pairStats struct {
	VisitorNAT    string  `json:"visitorNAT"`
	OwnerNAT      string  `json:"ownerNAT"`
	Attempts      int     `json:"attempts"`
	LAN           int     `json:"lan"`
	Direct        int     `json:"direct"`
	Relay         int     `json:"relay"`
	Mapped        int     `json:"mapped"`
	TCP           int     `json:"tcp"`
	AvgToDirectMs float64 `json:"avgToDirectMs"`
}

type clientStatus struct {
	ClientID  string          `json:"clientID"`
	Server    string          `json:"server"`
	Online    bool            `json:"online"`
	LastError string          `json:"lastError"`
	Proxies   []proxyStatus   `json:"proxies"`
	Visitors  []visitorStatus `json:"visitors"`
}

type proxyStatus struct {
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	State      string     `json:"state"`
	Error      string     `json:"error"`
	NextRetry  *time.Time `json:"nextRetry,omitempty"`
	RemoteAddr string     `json:"remoteAddr"`
	LocalAddr  string     `json:"localAddr"`
}

type visitorStatus struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	ServerName string `json:"serverName"`
	BindAddr   string `json:"bindAddr"`
	State      string `json:"state"`
	Error      string `json:"error"`
	Path       string `json:"path"`
}

type reloadResult struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged int      `json:"unchanged"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fakeHops is a hops web server: the dashboard at / and the API answered
// from its fields. Each GET /api/proxies moves the byte counters on by
// inStep and outStep per proxy, as traffic would.
type fakeHops struct {
	mu              sync.Mutex
	info            serverInfo
	clients         []clientRow
	proxies         []proxyRow
	p2p             []pairStats
	inStep, outStep int64
	fail            map[string]int // path -> HTTP status to answer instead
	polls           int            // GET /api/proxies answered
	user, password  string         // basic auth on every path, when set
	unauthorized    int            // requests refused for missing credentials
}

func (f *fakeHops) start(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /", HopsHandler())
	api := func(path string, v func() any) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if code := f.fail[path]; code != 0 {
				http.Error(w, "404 page not found", code)
				return
			}
			writeJSON(w, v())
		})
	}
	api("/api/serverinfo", func() any { return f.info })
	api("/api/clients", func() any { return f.clients })
	api("/api/proxies", func() any {
		// Uneven steps, so the sparkline has a shape.
		k := []int64{2, 3, 5, 4, 6, 3, 2, 4, 5, 7}[f.polls%10]
		f.polls++
		for i := range f.proxies {
			f.proxies[i].BytesIn += k * f.inStep * int64(i+1)
			f.proxies[i].BytesOut += k * f.outStep * int64(i+1)
		}
		return f.proxies
	})
	api("/api/p2p", func() any { return f.p2p })
	var h http.Handler = mux
	if f.user != "" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.password {
				f.mu.Lock()
				f.unauthorized++
				f.mu.Unlock()
				w.Header().Set("WWW-Authenticate", `Basic realm="hop"`)
				http.Error(w, "401 unauthorized", http.StatusUnauthorized)
				return
			}
			mux.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// busyHops is a server with one online client running two proxies with
// traffic, one client gone after heartbeat timeouts, and a P2P tally.
func busyHops() *fakeHops {
	now := time.Now().UTC().Truncate(time.Second)
	return &fakeHops{
		info: serverInfo{Version: "v0.10.0-test", BindPort: 7000, StartedAt: now.Add(-3 * time.Hour), UptimeSeconds: 3 * 3600,
			ClientsConnected: 1, Proxies: 2, EnablePrometheus: true},
		clients: []clientRow{
			{ClientID: "laptop", Addr: "127.0.0.1:5555", Online: true, NATClass: "EIM/EIF", HeartbeatRttMs: 1.25,
				ConnectedAt: now.Add(-42 * time.Minute), UptimeSeconds: 42 * 60, Sessions: 3, Proxies: []string{"ssh", "web"},
				Losses: []loss{
					{At: now.Add(-2 * time.Hour), Cause: "control stream ended: heartbeat timeout"},
					{At: now.Add(-50 * time.Minute), Cause: "control stream ended: read tcp 127.0.0.1:7000->127.0.0.1:5555: connection reset by peer"},
				}},
			{User: "ops", ClientID: "nas", Addr: "127.0.0.1:6001", Online: false, NATClass: "EIM/APDF", Sessions: 2,
				Losses: []loss{
					{At: now.Add(-90 * time.Minute), Cause: "control stream ended: heartbeat timeout"},
					{At: now.Add(-10 * time.Minute), Cause: "client went away: EOF"},
				}},
		},
		proxies: []proxyRow{
			{Name: "ssh", ClientID: "laptop", Type: "tcp", RemotePort: 6000, State: "online", ConnsOpen: 1, ConnsTotal: 5, BytesIn: 120_000, BytesOut: 4_500_000},
			{Name: "web", ClientID: "laptop", Type: "tcp", RemotePort: 6080, State: "online", ConnsOpen: 3, ConnsTotal: 41, BytesIn: 2_000_000, BytesOut: 90_000_000},
		},
		p2p: []pairStats{
			{VisitorNAT: "EIM/EIF", OwnerNAT: "EIM/EIF", Attempts: 4, LAN: 1, Direct: 2, Relay: 1, AvgToDirectMs: 120},
			{VisitorNAT: "EIM/EIF", OwnerNAT: "EIM/APDF", Attempts: 6, Direct: 6, Mapped: 2, AvgToDirectMs: 300},
			{VisitorNAT: "EDM", OwnerNAT: "EIM/APDF", Attempts: 5, Direct: 1, Relay: 4, TCP: 1, AvgToDirectMs: 900},
		},
		inStep: 20_000, outStep: 300_000,
	}
}

// fakeHopc is a hopc admin server: the dashboard at / and /api/status,
// /api/reload answered from its fields.
type fakeHopc struct {
	mu        sync.Mutex
	status    clientStatus
	reloadErr string // the 400 error of POST /api/reload, if set
	reload    reloadResult
	reloads   int
}

func (f *fakeHopc) start(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /", HopcHandler())
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, f.status)
	})
	mux.HandleFunc("POST /api/reload", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reloads++
		if f.reloadErr != "" {
			w.WriteHeader(http.StatusBadRequest)
			writeJSON(w, map[string]string{"error": f.reloadErr})
			return
		}
		writeJSON(w, f.reload)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func busyHopc() *fakeHopc {
	retry := time.Now().Add(30 * time.Second).UTC().Truncate(time.Second)
	return &fakeHopc{status: clientStatus{
		ClientID: "laptop", Server: "127.0.0.1:7000", Online: true,
		Proxies: []proxyStatus{
			{Name: "ssh", Type: "tcp", State: "running", RemoteAddr: ":6000", LocalAddr: "127.0.0.1:22"},
			{Name: "db", Type: "tcp", State: "failed", Error: "port 6001 is in use on the server", NextRetry: &retry, RemoteAddr: ":6001", LocalAddr: "127.0.0.1:5432"},
		},
		Visitors: []visitorStatus{
			{Name: "v", Type: "xtcp", ServerName: "p", BindAddr: "127.0.0.1:9000", State: "running", Path: "direct-udp"},
		},
	}, reload: reloadResult{Added: []string{"proxy:web"}, Unchanged: 2}}
}
