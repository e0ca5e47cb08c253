// Command demo runs hop's main job on one machine: it builds hops and
// hopc, starts a small web service on loopback that stands for a service in
// a private network, starts hops and a hopc that exposes the service
// through it, checks that the service answers on the server's public port,
// and keeps everything running until Ctrl-C.
//
//	go run ./examples/demo
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	serverPort := fs.Int("server-port", 7000, "hops control port")
	publicPort := fs.Int("public-port", 6080, "public port of the demo proxy on hops")
	check := fs.Bool("check", false, "exit after the first successful request instead of waiting for Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hop-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Println("building hops and hopc ...")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", dir+"/", "./cmd/hops", "./cmd/hopc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as released
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build (run the demo from the repository root): %w", err)
	}

	// The "private" service: a web page on a loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the private service behind hopc (you came from %s)\n", r.RemoteAddr)
	})}
	go web.Serve(ln)
	defer web.Close()
	localPort := ln.Addr().(*net.TCPAddr).Port

	var tok [16]byte
	rand.Read(tok[:]) // a fresh token per run: the demo's ports are on loopback, but a fixed token is a bad example
	token := hex.EncodeToString(tok[:])
	srvCfg := fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nproxyBindAddr = \"127.0.0.1\"\nauth.token = %q\n", *serverPort, token)
	cliCfg := fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = %q\n\n[[proxies]]\nname = \"web\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\nremotePort = %d\n", *serverPort, token, localPort, *publicPort)
	for name, body := range map[string]string{"hops.toml": srvCfg, "hopc.toml": cliCfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return err
		}
		fmt.Printf("--- %s\n%s", name, body)
	}
	fmt.Println("---")

	hops, err := startProc(filepath.Join(dir, "hops"), "-c", filepath.Join(dir, "hops.toml"))
	if err != nil {
		return err
	}
	defer stopProc(hops)
	hopc, err := startProc(filepath.Join(dir, "hopc"), "-c", filepath.Join(dir, "hopc.toml"))
	if err != nil {
		return err
	}
	defer stopProc(hopc)

	url := fmt.Sprintf("http://127.0.0.1:%d/", *publicPort)
	body, err := poll(ctx, url, 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("\nGET %s through hops -> hopc -> private service:\n  %s\n", url, body)
	if *check {
		return nil
	}
	fmt.Println("The tunnel is up. Open the URL above in a browser; press Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}

func startProc(path string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd, cmd.Start()
}

// stopProc ends a process this program started: SIGINT, then a kill after
// a grace period.
func stopProc(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// poll fetches url until it answers or d passes.
func poll(ctx context.Context, url string, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b), nil
			}
			err = errors.Join(rerr, fmt.Errorf("status %s", resp.Status))
		}
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the demo service did not answer through the tunnel within %v: %v", d, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
