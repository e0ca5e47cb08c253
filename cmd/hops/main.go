// Command hops is the hop server: it runs on a reachable host and exposes
// the proxies of connected hopc clients on its public ports.
//
//	hops -c hops.toml          run the server
//	hops verify -c hops.toml   check a config file and exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/logging"
	"github.com/hopproxy/hop/pkg/procs"
	"github.com/hopproxy/hop/pkg/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hops:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  hops -c FILE          run the server with config FILE
  hops verify -c FILE   check FILE and print every problem`

func run(ctx context.Context, args []string, stdout io.Writer) error {
	verify := len(args) > 0 && args[0] == "verify"
	if verify {
		args = args[1:]
	}
	fs := flag.NewFlagSet("hops", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("c", "", "config file")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() > 0 {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, usage)
			return nil
		}
		return fmt.Errorf("%s", usage)
	}
	cfg, err := config.LoadServer(*path)
	if err != nil {
		return err
	}
	if verify {
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		fmt.Fprintf(stdout, "%s: OK\n", *path)
		return nil
	}
	log, closeLog, err := logging.New(cfg.Log.Level, cfg.Log.To)
	if err != nil {
		return err
	}
	defer closeLog()
	for _, w := range cfg.Warnings() {
		log.Warn("config warning", "warning", w)
	}
	if n, fromEnv := procs.Set(); !fromEnv {
		log.Debug("scheduler", "gomaxprocs", n, "cpus", runtime.NumCPU(), "hint", "set GOMAXPROCS to override")
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	if err := srv.Listen(ctx); err != nil {
		return err
	}
	err = srv.Serve(ctx)
	if err == nil {
		log.Info("stopped")
	}
	return err
}
