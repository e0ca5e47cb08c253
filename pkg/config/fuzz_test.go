package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// addConfSeeds adds the examples in conf/ whose names match pattern.
func addConfSeeds(f *testing.F, pattern string) {
	files, err := filepath.Glob(filepath.Join("../../conf", pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no conf files match %s: %v", pattern, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// fuzzParse checks that parse never panics, that it fails only with an
// *Error, and that what it accepts passes Validate.
func fuzzParse(t *testing.T, data []byte, parse func([]byte) (interface{ Validate() error }, error)) {
	cfg, err := parse(data)
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 || !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %T %v is not an *Error with problems", err, err)
		}
		return
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("parse accepted a config that Validate rejects: %v\n%s", err, data)
	}
}

func FuzzParseServer(f *testing.F) {
	for _, c := range append(append(serverCases, vhostServerCases...), tcpmuxServerCases...) {
		f.Add([]byte(c.toml))
	}
	addConfSeeds(f, "hops*.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzParse(t, data, func(b []byte) (interface{ Validate() error }, error) {
			return ParseServer("fuzz.toml", b)
		})
	})
}

func FuzzParseClient(f *testing.F) {
	for _, c := range append(append(append(append(clientCases, vhostClientCases...), tcpmuxClientCases...), p2plifeClientCases...), nodesetClientCases...) {
		f.Add([]byte(c.toml))
	}
	addConfSeeds(f, "hopc*.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzParse(t, data, func(b []byte) (interface{ Validate() error }, error) {
			return ParseClient("fuzz.toml", b)
		})
	})
}
