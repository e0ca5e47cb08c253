// Package migrate is the migrate subcommand shared by hopc and hops: it
// converts an frp config file (package frpconf) and prints the result.
package migrate

import (
	"fmt"
	"io"

	"github.com/hopproxy/hop/pkg/frpconf"
)

// Run runs "<side> migrate FILE": the hop config goes to stdout, a
// summary of what was not converted to stderr.
func Run(args []string, side frpconf.Side, stdout, stderr io.Writer) error {
	prog := map[frpconf.Side]string{frpconf.Client: "frpc", frpconf.Server: "frps"}[side]
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		return fmt.Errorf("usage: %s migrate FILE   (FILE: a %s config of frp v0.52+, .toml, .yaml, .yml or .json; the %s config is printed on stdout)", side, prog, side)
	}
	out, rep, err := frpconf.ConvertFile(args[0], side)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return err
	}
	n := len(rep.Commented())
	fmt.Fprintf(stderr, "%s: %d keys, %d converted, %d not (listed in comments); check the result with %s verify -c FILE\n",
		args[0], len(rep.Keys), len(rep.Keys)-n, n, side)
	return nil
}
