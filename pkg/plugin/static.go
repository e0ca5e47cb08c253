package plugin

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
)

// StaticFile is the static_file plugin: a file server over one
// directory, optionally below a URL prefix and behind basic
// authentication. Files are opened through an os.Root, so that neither
// "../" in a URL nor a symbolic link leads outside the directory.
type StaticFile struct {
	*httpServe
	root *os.Root
}

// NewStaticFile serves the directory dir. prefix ("static" or "/static/")
// is removed from URL paths first, and paths without it are not found.
// user and pass, when user is set, are required with basic
// authentication.
func NewStaticFile(dir, prefix, user, pass string, log *slog.Logger) (*StaticFile, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("static_file: %w", err)
	}
	var h http.Handler = http.FileServerFS(root.FS())
	if p := strings.Trim(prefix, "/"); p != "" {
		h = http.StripPrefix("/"+p, h)
		mux := http.NewServeMux()
		mux.Handle("/"+p+"/", h)
		h = mux
	}
	return &StaticFile{httpServe: newHTTPServe(basicAuth(h, user, pass), log, nil), root: root}, nil
}

// Close implements Handler.
func (s *StaticFile) Close() error {
	s.httpServe.Close()
	return s.root.Close()
}
