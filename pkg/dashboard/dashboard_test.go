package dashboard

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkSecurityHeaders checks the headers every answer carries.
func checkSecurityHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("%s: Content-Security-Policy %q, want default-src 'self' and nothing unsafe", what, csp)
	}
	if v := resp.Header.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", what, v)
	}
}

var handlers = map[string]func() http.Handler{"hops": HopsHandler, "hopc": HopcHandler}

func TestIndexAndAssets(t *testing.T) {
	for name, mk := range handlers {
		t.Run(name, func(t *testing.T) {
			h := mk()
			resp := get(t, h, "GET", "/")
			if resp.StatusCode != 200 {
				t.Fatalf("GET / = %d", resp.StatusCode)
			}
			checkSecurityHeaders(t, "GET /", resp)
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("GET / Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "private, no-cache" {
				t.Errorf("GET / Cache-Control %q", cc)
			}
			if resp.Header.Get("ETag") == "" {
				t.Error("GET / has no ETag")
			}
			refs := localRefs(t, body(t, resp))
			wantTypes := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
			seen := map[string]bool{}
			for _, ref := range refs {
				p := "/" + ref
				resp := get(t, h, "GET", p)
				if resp.StatusCode != 200 {
					t.Errorf("index.html refers to %s, which answers %d", ref, resp.StatusCode)
					continue
				}
				checkSecurityHeaders(t, p, resp)
				ext := ref[strings.LastIndex(ref, "."):]
				if ct := resp.Header.Get("Content-Type"); ct != wantTypes[ext] {
					t.Errorf("%s Content-Type %q, want %q", p, ct, wantTypes[ext])
				}
				seen[ext] = true
			}
			for _, ext := range []string{".js", ".css", ".svg"} {
				if !seen[ext] {
					t.Errorf("index.html refers to no %s file", ext)
				}
			}
		})
	}
}

// localRefs returns every src and href of page, failing the test for one
// that is not a relative path to the handler's own static/ files, and
// for inline script, inline style or event-handler attributes (the CSP
// would block them).
func localRefs(t *testing.T, page string) []string {
	t.Helper()
	root, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, n := range all(root, func(*html.Node) bool { return true }) {
		for _, a := range n.Attr {
			switch {
			case a.Key == "src" || a.Key == "href":
				u, err := url.Parse(a.Val)
				if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(a.Val, "/") || !strings.HasPrefix(u.Path, "static/") || u.RawQuery != "" {
					t.Errorf("<%s %s=%q>: want a relative path under static/, nothing from another origin", n.Data, a.Key, a.Val)
					continue
				}
				refs = append(refs, u.Path)
			case a.Key == "style" || strings.HasPrefix(a.Key, "on"):
				t.Errorf("<%s %s=...>: inline style and handlers are blocked by the CSP", n.Data, a.Key)
			}
		}
		if n.Data == "script" {
			if _, ok := attr(n, "src"); !ok || strings.TrimSpace(text(n)) != "" {
				t.Errorf("inline <script>: the CSP blocks it; use a file under static/")
			}
		}
		if n.Data == "style" {
			t.Errorf("inline <style>: the CSP blocks it; use static/dash.css")
		}
	}
	return refs
}

func TestConditionalAndMethods(t *testing.T) {
	h := HopsHandler()
	first := get(t, h, "GET", "/static/hops.js")
	etag := first.Header.Get("ETag")
	if etag == "" || first.StatusCode != 200 {
		t.Fatalf("GET /static/hops.js = %d, ETag %q", first.StatusCode, etag)
	}
	if resp := get(t, h, "GET", "/static/hops.js", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match of the ETag = %d, want 304", resp.StatusCode)
	}
	if resp := get(t, h, "GET", "/static/hops.js", "If-None-Match", `"other"`); resp.StatusCode != 200 {
		t.Errorf("GET with another If-None-Match = %d, want 200", resp.StatusCode)
	}
	resp := get(t, h, "HEAD", "/")
	if resp.StatusCode != 200 || body(t, resp) != "" {
		t.Errorf("HEAD / = %d with a body", resp.StatusCode)
	}
	resp = get(t, h, "POST", "/")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d, Allow %q; want 405, GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
	checkSecurityHeaders(t, "POST /", resp)
	for _, p := range []string{"/index.html", "/static/", "/static/index.html", "/static/../static/hops.js", "/api/nothing", "/static/hopc.js", "/favicon.ico"} {
		resp := get(t, h, "GET", p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
		checkSecurityHeaders(t, "GET "+p, resp)
	}
	if resp := get(t, HopcHandler(), "GET", "/static/hops.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("hopc serves hops.js: %d", resp.StatusCode)
	}
}

// TestScriptsStayOnOrigin reads the scripts: every request goes to a
// path under api/ relative to the page, and no script names another
// origin (the SVG namespace is a name, not a fetch).
func TestScriptsStayOnOrigin(t *testing.T) {
	urlRE := regexp.MustCompile(`[a-z]+://[^"' ]*|"//`)
	reqRE := regexp.MustCompile(`\brequest\(\s*([^,)]+)`)
	fetchRE := regexp.MustCompile(`\bfetch\(`)
	settleRE := regexp.MustCompile(`\bsettle\(\[([^\]]*)\]`)
	var scripts, requests int
	err := fs.WalkDir(files, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		src := string(b)
		for _, u := range urlRE.FindAllString(src, -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s names %q: the dashboard loads nothing from another origin", path, u)
			}
		}
		if !strings.HasSuffix(path, ".js") {
			return nil
		}
		scripts++
		if n := len(fetchRE.FindAllString(src, -1)); n > 0 && path != "static/shared/common.js" {
			t.Errorf("%s calls fetch directly; use hop.request (common.js)", path)
		}
		for _, m := range reqRE.FindAllStringSubmatch(src, -1) {
			arg := strings.TrimSpace(m[1])
			if path == "static/shared/common.js" {
				continue // request(path, ...) and settle's request(p)
			}
			requests++
			if !regexp.MustCompile(`^"api/[a-z0-9/]+"$`).MatchString(arg) {
				t.Errorf("%s: request(%s): want a literal path under api/", path, arg)
			}
		}
		for _, m := range settleRE.FindAllStringSubmatch(src, -1) {
			for _, arg := range strings.Split(m[1], ",") {
				requests++
				if arg = strings.TrimSpace(arg); !regexp.MustCompile(`^"api/[a-z0-9/]+"$`).MatchString(arg) {
					t.Errorf("%s: settle([... %s ...]): want literal paths under api/", path, arg)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scripts != 3 || requests < 6 {
		t.Errorf("checked %d scripts and %d requests; the walk missed files", scripts, requests)
	}
}
