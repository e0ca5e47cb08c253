// Command hops is the hop server: it runs on a reachable host and exposes
// the proxies of connected hopc clients on its public ports.
//
//	hops -c hops.toml          run the server
//	hops verify -c hops.toml   check a config file and exit
//	hops version               print the version (also -v, --version)
//	hops migrate frps.toml     print the hop config equivalent to an frps config
//
// SIGHUP reloads the config file (see reload.go).
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

	"github.com/hopproxy/hop/pkg/buildinfo"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/fdlimit"
	"github.com/hopproxy/hop/pkg/frpconf"
	"github.com/hopproxy/hop/pkg/frpconf/migrate"
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
  hops verify -c FILE   check FILE and print every problem
  hops version          print the version and build (also -v, --version)
  hops migrate FILE     print the hops config equivalent to frps config FILE (frp v0.52+: .toml, .yaml, .yml or .json)
SIGHUP reloads FILE: allowPorts, maxProxiesPerClient, auth tokens and log.level apply at once`

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return migrate.Run(args[1:], frpconf.Server, stdout, os.Stderr)
	}
	hup := procs.CatchHUP() // from here on SIGHUP no longer ends the process
	verify := len(args) > 0 && args[0] == "verify"
	version := len(args) == 1 && args[0] == "version"
	if verify || version {
		args = args[1:]
	}
	fs := flag.NewFlagSet("hops", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("c", "", "config file")
	fs.BoolVar(&version, "v", version, "print the version")
	fs.BoolVar(&version, "version", version, "print the version")
	err := fs.Parse(args)
	if version && err == nil && fs.NArg() == 0 {
		fmt.Fprintln(stdout, buildinfo.String("hops"))
		return nil
	}
	if err != nil || *path == "" || fs.NArg() > 0 {
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
	lg, err := logging.New(logging.Options{Level: cfg.Log.Level, To: cfg.Log.To, MaxDays: cfg.Log.MaxDays})
	if err != nil {
		return err
	}
	defer lg.Close()
	log := lg.Logger
	log.Info("starting", "version", buildinfo.String("hops"))
	fdlimit.RaiseAndLog(log)
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
	srv.SetLogLevelVar(lg.Level)
	defer hup.Handle(func() { reload(*path, srv, log) })()
	if err := srv.Listen(ctx); err != nil {
		return err
	}
	err = srv.Serve(ctx)
	if err == nil {
		log.Info("stopped")
	}
	return err
}
