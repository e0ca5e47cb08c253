package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/hopproxy/hop/pkg/buildinfo/buildinfotest"
)

func TestVersion(t *testing.T) {
	buildinfotest.CheckVersion(t, "hops", func(args []string, out *bytes.Buffer) error {
		return run(context.Background(), args, out)
	})
}
