// Package adminapi is hopc's admin API, served on its [webServer] by
// pkg/webserver, and the client of it that hopc status, hopc reload and
// hopc stop use. It is a package of its own, not part of pkg/client, so
// that the client knows nothing of HTTP: the API reaches the client only
// through the hooks of Options.
//
//	GET  /api/status   client.Status as JSON
//	GET  /api/config   the config file's text
//	GET  /api/reload   reload the config file (frp's method); POST too:
//	POST /api/reload   200 with the hook's result, 400 {"error":...}
//	POST /api/stop     200 {"stopping":true}, then the Stop hook runs
package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"os"

	"github.com/hopproxy/hop/pkg/client"
)

// Options are the hooks of the API.
type Options struct {
	// Status reports the client's state.
	Status func() client.Status
	// ConfigFile is the path of the config file GET /api/config shows.
	ConfigFile string
	// Reload loads ConfigFile again and applies it; its result is the
	// 200 answer, its error the 400 one (the old config keeps running).
	Reload func(ctx context.Context) (any, error)
	// Stop starts the client's graceful shutdown. It must not block.
	Stop func()
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// Handler returns the API's routes.
func Handler(o Options) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, o.Status())
	})
	mux.HandleFunc("GET /api/config", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, ErrorBody{"read the config file: " + err.Error()})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(b)
	})
	reload := func(w http.ResponseWriter, r *http.Request) {
		res, err := o.Reload(r.Context())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorBody{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
	mux.HandleFunc("GET /api/reload", reload)
	mux.HandleFunc("POST /api/reload", reload)
	mux.HandleFunc("POST /api/stop", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"stopping": true})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		o.Stop()
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
