// Package dashboard is the web dashboard of hops and hopc: static HTML,
// CSS and JavaScript embedded in the binary, no build step and no
// external resources. The page fetches the JSON API of the same web
// server (paths relative to the page, so the browser's basic-auth
// credentials go along) and renders it; the handler only serves files.
//
// A handler serves
//
//	GET /              the site's index.html
//	GET /static/NAME   the site's own files and the shared ones
//
// and answers 404 for every other path and 405 for methods other than
// GET and HEAD. Every answer carries a Content-Security-Policy of
// default-src 'self' (no inline script or style, no other origin),
// X-Content-Type-Options: nosniff, and an ETag with Cache-Control: private,
// no-cache, so a browser revalidates each file and a new binary's
// files are picked up at once.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// contentTypes are the types of the files a site may hold; a file of
// another extension is not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// CSP is the Content-Security-Policy of every answer: scripts, styles,
// images and fetches only from the page's own origin, no inline script
// or style attributes, no framing (the hopc page has a Reload button).
const CSP = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// HopsHandler serves the hops dashboard: server info, clients and their
// proxies, live traffic, session losses and the P2P success matrix, from
// /api/serverinfo, /api/clients, /api/proxies and /api/p2p.
func HopsHandler() http.Handler { return newSite("hops") }

// HopcHandler serves the hopc dashboard: the state of each proxy and
// visitor from /api/status and a Reload button (POST /api/reload).
func HopcHandler() http.Handler { return newSite("hopc") }

// asset is one file as served.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// site serves static/<name>/index.html at / and the files of
// static/<name> and static/shared under /static/.
type site struct {
	index  *asset
	assets map[string]*asset // by base name
	err    error             // the embedded files are not as this package expects
}

func newSite(name string) *site {
	s := &site{assets: map[string]*asset{}}
	s.err = s.load(name)
	return s
}

func (s *site) load(name string) error {
	for _, dir := range []string{"static/shared", "static/" + name} {
		ents, err := fs.ReadDir(files, dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			ctype, ok := contentTypes[path.Ext(e.Name())]
			if e.IsDir() || !ok {
				continue
			}
			body, err := files.ReadFile(dir + "/" + e.Name())
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			a := &asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
			if dir != "static/shared" && e.Name() == "index.html" {
				s.index = a
				continue
			}
			if _, dup := s.assets[e.Name()]; dup {
				return fmt.Errorf("dashboard: %s/%s shadows a shared file of the same name", dir, e.Name())
			}
			s.assets[e.Name()] = a
		}
	}
	if s.index == nil {
		return fmt.Errorf("dashboard: static/%s/index.html is missing from the binary", name)
	}
	return nil
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard answers only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	if s.err != nil {
		http.Error(w, s.err.Error(), http.StatusInternalServerError)
		return
	}
	var a *asset
	switch p := r.URL.Path; {
	case p == "/":
		a = s.index
	case strings.HasPrefix(p, "/static/"):
		a = s.assets[strings.TrimPrefix(p, "/static/")]
	}
	if a == nil {
		http.Error(w, "404 page not found: "+r.URL.Path+" (the dashboard is at /, its API under /api/)", http.StatusNotFound)
		return
	}
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
