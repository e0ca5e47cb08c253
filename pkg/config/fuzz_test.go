package config

import (
	"errors"
	"testing"
)

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
	for _, c := range serverCases {
		f.Add([]byte(c.toml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzParse(t, data, func(b []byte) (interface{ Validate() error }, error) {
			return ParseServer("fuzz.toml", b)
		})
	})
}

func FuzzParseClient(f *testing.F) {
	for _, c := range clientCases {
		f.Add([]byte(c.toml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzParse(t, data, func(b []byte) (interface{ Validate() error }, error) {
			return ParseClient("fuzz.toml", b)
		})
	})
}
