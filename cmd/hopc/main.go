// Command hopc is the hop client: it runs next to private services and
// exposes them through a hops server, as its config file says.
//
//	hopc -c hopc.toml          run the client
//	hopc verify -c hopc.toml   check a config file and exit
//	hopc nat -c hopc.toml      show this network's NAT behaviour, as hops sees it
//	hopc version               print the version (also -v, --version)
//	hopc status -c hopc.toml   show the proxies and visitors of the running hopc
//	hopc reload -c hopc.toml   make the running hopc reload its config file
//	hopc stop -c hopc.toml     stop the running hopc
//	hopc migrate frpc.toml     print the hop config equivalent to an frpc config
//
// status, reload and stop call the admin API ([webServer]) of FILE.
// SIGHUP reloads the config file too (see reload.go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/hopproxy/hop/pkg/adminapi"
	"github.com/hopproxy/hop/pkg/buildinfo"
	"github.com/hopproxy/hop/pkg/client"
	"github.com/hopproxy/hop/pkg/config"
	"github.com/hopproxy/hop/pkg/dashboard"
	"github.com/hopproxy/hop/pkg/fdlimit"
	"github.com/hopproxy/hop/pkg/frpconf"
	"github.com/hopproxy/hop/pkg/frpconf/migrate"
	"github.com/hopproxy/hop/pkg/logging"
	"github.com/hopproxy/hop/pkg/procs"
	"github.com/hopproxy/hop/pkg/webserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hopc:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  hopc -c FILE          run the client with config FILE
  hopc verify -c FILE   check FILE and print every problem
  hopc nat -c FILE      discover the NAT in front of this host (via the server in FILE) and explain what it means for P2P
  hopc status -c FILE   show the proxies and visitors of the hopc running with FILE (via its webServer)
  hopc reload -c FILE   make the hopc running with FILE reload it
  hopc stop -c FILE     stop the hopc running with FILE
  hopc migrate FILE     print the hopc config equivalent to frpc config FILE (frp v0.52+: .toml, .yaml, .yml or .json)
  hopc version          print the version and build (also -v, --version)
SIGHUP reloads FILE: its proxies and visitors apply at once, the connections of unchanged ones stay`

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return migrate.Run(args[1:], frpconf.Client, stdout, os.Stderr)
	}
	hup := procs.CatchHUP() // from here on SIGHUP no longer ends the process
	var sub string
	if len(args) > 0 {
		switch args[0] {
		case "verify", "nat", "status", "reload", "stop":
			sub, args = args[0], args[1:]
		case "version":
			if len(args) == 1 {
				sub, args = args[0], args[1:]
			}
		}
	}
	fs := flag.NewFlagSet("hopc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("c", "", "config file")
	version := sub == "version"
	fs.BoolVar(&version, "v", version, "print the version")
	fs.BoolVar(&version, "version", version, "print the version")
	err := fs.Parse(args)
	if version && err == nil && fs.NArg() == 0 {
		fmt.Fprintln(stdout, buildinfo.String("hopc"))
		return nil
	}
	if err != nil || *path == "" || fs.NArg() > 0 {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, usage)
			return nil
		}
		return fmt.Errorf("%s", usage)
	}
	cfg, err := config.LoadClient(*path)
	if err != nil {
		return err
	}
	switch sub {
	case "verify":
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		fmt.Fprintf(stdout, "%s: OK (%d proxies, %d visitors)\n", *path, len(cfg.Proxies), len(cfg.Visitors))
		return nil
	case "nat":
		return client.PrintNAT(ctx, cfg, stdout)
	case "status", "reload", "stop":
		return adminCommand(ctx, sub, cfg, stdout)
	}
	lg, err := logging.New(logging.Options{Level: cfg.Log.Level, To: cfg.Log.To, MaxDays: cfg.Log.MaxDays})
	if err != nil {
		return err
	}
	defer lg.Close()
	log := lg.Logger
	log.Info("starting", "version", buildinfo.String("hopc"))
	fdlimit.RaiseAndLog(log)
	for _, w := range cfg.Warnings() {
		log.Warn("config warning", "warning", w)
	}
	if n, fromEnv := procs.Set(); !fromEnv {
		log.Debug("scheduler", "gomaxprocs", n, "cpus", runtime.NumCPU(), "hint", "set GOMAXPROCS to override")
	}
	c, err := client.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	defer hup.Handle(func() { reloadFromFile(ctx, c, *path, log) })()
	if cfg.WebServer.Port != 0 {
		// On its own context: the API answers status during the drain,
		// and closes after Run returned.
		mux := adminapi.Handler(adminapi.Options{
			Status:     c.Status,
			ConfigFile: *path,
			Reload:     func(ctx context.Context) (any, error) { return reloadFromFile(ctx, c, *path, log) },
			Stop: func() {
				log.Info("stop requested through the admin API")
				stopRun()
			},
		})
		if h := c.MetricsHandler(); h != nil {
			mux.Handle("GET /metrics", h)
		}
		mux.Handle("GET /", dashboard.HopcHandler())
		ws, err := webserver.Start(context.Background(), cfg.WebServer, mux, log)
		if err != nil {
			return err
		}
		defer ws.Close()
	}
	err = c.Run(ctx)
	if err == nil {
		log.Info("stopped")
	}
	return err
}

// adminCommand runs hopc status, reload or stop against the admin API
// that cfg's [webServer] describes.
func adminCommand(ctx context.Context, sub string, cfg *config.ClientConfig, stdout io.Writer) error {
	api, err := adminapi.NewClient(cfg.WebServer)
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		st, err := api.Status(ctx)
		if err != nil {
			return err
		}
		return adminapi.WriteStatus(stdout, st)
	case "reload":
		res, err := api.Reload(ctx)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "reloaded: %s\n", b)
		return nil
	default:
		if err := api.Stop(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "hopc is stopping (it drains open connections for up to its gracePeriod)")
		return nil
	}
}
