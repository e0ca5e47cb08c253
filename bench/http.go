package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP phases request benchPath with the Host header benchHost: the
// domain of the proxies' http routes. The backend answers it with
// httpBodySize bytes and anything else with 404.
const (
	benchHost    = "bench.hop.test"
	benchPath    = "/1k"
	httpBodySize = 1024
)

// errHTTPStatus is wrapped by a request whose answer is not 200 with the
// backend's body: a wrong Host is a 404 from the vhost (or the backend),
// and fails the phase like a transport error.
var errHTTPStatus = errors.New("unexpected HTTP answer")

// httpBackend is the in-process HTTP service of the HTTP phases.
type httpBackend struct {
	ln     net.Listener
	srv    *http.Server
	body   []byte
	opened atomic.Int64 // connections accepted so far
	wg     sync.WaitGroup
}

// newHTTPBackend serves GET benchPath for Host benchHost on loopback,
// with keep-alive, answering a fixed body of httpBodySize bytes.
func newHTTPBackend() (*httpBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &httpBackend{ln: ln, body: bytes.Repeat([]byte("hop-bench "), httpBodySize/10+1)[:httpBodySize]}
	h.srv = &http.Server{
		Handler:           http.HandlerFunc(h.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute, // longer than any phase: keep-alive is never cut by the backend
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				h.opened.Add(1)
			}
		},
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.srv.Serve(ln)
	}()
	return h, nil
}

func (h *httpBackend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Host != benchHost || r.URL.Path != benchPath || r.Method != http.MethodGet {
		http.Error(w, fmt.Sprintf("bench backend: only GET %s on host %s, not %s %s on %q", benchPath, benchHost, r.Method, r.URL.Path, r.Host), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", fmt.Sprint(len(h.body)))
	w.Write(h.body)
}

func (h *httpBackend) Addr() string { return h.ln.Addr().String() }

// Close closes the listener and every connection and waits for the
// server. It is safe to call twice.
func (h *httpBackend) Close() error {
	err := h.srv.Close()
	h.wg.Wait()
	return err
}

// httpClient is a keep-alive HTTP/1.1 client of one target: every request
// goes to addr with Host host, over at most conns connections, and its
// dials are counted (with keep-alive, one per connection).
type httpClient struct {
	url, host string
	want      []byte
	tr        *http.Transport
	c         *http.Client
	dials     atomic.Int64
}

func newHTTPClient(addr, host string, want []byte, conns int) *httpClient {
	h := &httpClient{url: "http://" + addr + benchPath, host: host, want: want}
	var d net.Dialer
	h.tr = &http.Transport{
		Proxy: nil, // never an HTTP_PROXY of the environment
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			h.dials.Add(1)
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return d.DialContext(ctx, network, a)
		},
		// At most conns connections, all kept: a request that finds none
		// idle waits for one instead of dialing a spare.
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	h.c = &http.Client{Transport: h.tr, Timeout: 10 * time.Second}
	return h
}

// Close closes the client's idle connections.
func (h *httpClient) Close() { h.tr.CloseIdleConnections() }

// get makes one request, reading the answer into buf, and checks that it
// is 200 with the backend's body.
func (h *httpClient) get(ctx context.Context, buf *bytes.Buffer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return err
	}
	req.Host = h.host
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	// Read to the end (so that the connection is reused), at most one
	// byte more than expected.
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, int64(len(h.want))+1))
	switch {
	case err != nil:
		return fmt.Errorf("GET %s (Host %s): reading the body: %w", h.url, h.host, err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s (Host %s): %w: %s: %q", h.url, h.host, errHTTPStatus, resp.Status, firstLine(buf.String()))
	case !bytes.Equal(buf.Bytes(), h.want):
		return fmt.Errorf("GET %s (Host %s): %w: a body of %d bytes, not the backend's %d", h.url, h.host, errHTTPStatus, buf.Len(), len(h.want))
	}
	return nil
}

// httpRateResult is what an HTTP request-rate phase counted in its
// window, and the CPU seconds the proxy used meanwhile.
type httpRateResult struct {
	n       int64 // requests completed in the window
	elapsed time.Duration
	total   int64 // requests completed, warm-up included
	dials   int64 // connections the client opened
	cpu     float64
}

func (r httpRateResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// httpRate runs workers loops of requests through cl, each waiting for its
// answer before the next. The requests of the first warmup are not
// counted; then the completed ones are counted for dur. cpu, if not nil,
// is read at both ends of that window. The phase stops at the end of the
// window or after maxReqs requests, whichever comes first; the first
// failed request stops it with an error.
func httpRate(ctx context.Context, cl *httpClient, workers int, warmup, dur time.Duration, maxReqs int, cpu func() float64) (httpRateResult, error) {
	var (
		started, done atomic.Int64
		stopped       atomic.Bool
		errOnce       sync.Once
		firstErr      error
		wg            sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for !stopped.Load() && ctx.Err() == nil {
				i := started.Add(1)
				if i > int64(maxReqs) {
					return
				}
				if err := cl.get(ctx, &buf); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = fmt.Errorf("request %d of %d workers: %w", i, workers, err) })
					}
					stopped.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	wait := func(d time.Duration) bool { // false if the workers ended first
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-finished:
			return false
		case <-t.C:
			return true
		}
	}

	var r httpRateResult
	inTime := wait(warmup)
	n0, t0 := done.Load(), time.Now()
	if cpu != nil {
		r.cpu = -cpu()
	}
	if inTime {
		wait(dur)
	}
	r.n, r.elapsed = done.Load()-n0, time.Since(t0)
	if cpu != nil {
		r.cpu += cpu()
	}
	stopped.Store(true)
	<-finished
	r.total, r.dials = done.Load(), cl.dials.Load()
	switch {
	case ctx.Err() != nil:
		return r, ctx.Err()
	case firstErr != nil:
		return r, firstErr
	case !inTime:
		return r, fmt.Errorf("the %d requests of -max-reqs were done within the %v warm-up: raise -max-reqs", maxReqs, warmup)
	case r.n == 0:
		return r, fmt.Errorf("no request to %s completed in %v", cl.url, r.elapsed)
	}
	return r, nil
}

// httpLatency times n requests through cl, one at a time, after 100
// unmeasured ones, and returns the durations sorted. The whole
// measurement must end within limit; the first failed request ends it
// with an error.
func httpLatency(ctx context.Context, cl *httpClient, n int, limit time.Duration) ([]time.Duration, error) {
	lctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	const warmup = 100
	var buf bytes.Buffer
	ds := make([]time.Duration, 0, n)
	for i := range warmup + n {
		t0 := time.Now()
		if err := cl.get(lctx, &buf); err != nil {
			if ctx.Err() == nil && lctx.Err() != nil {
				return nil, fmt.Errorf("%d requests to %s not done within %v (at request %d): %w", warmup+n, cl.url, limit, i, err)
			}
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		if i >= warmup {
			ds = append(ds, time.Since(t0))
		}
	}
	slices.Sort(ds)
	return ds, nil
}
