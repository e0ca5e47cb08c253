// Package chromiumtest runs headless Chromium for tests of the dashboard.
// DumpDOM and Screenshot load a page, let its scripts run for a
// virtual-time budget, and return the rendered DOM (ParseDOM, ByTestID and
// Text read it) or write a PNG. Start drives a browser over the DevTools
// protocol instead, for tests that click and wait for the page to react.
//
// Chromium runs with a fresh profile in a temporary directory, without
// proxy, background networking, component updates, sync, extensions or
// first-run pages, so the only traffic is the page's own (a loopback URL
// in hop's tests). It runs in a process group of its own, and that group
// is killed by its ID when the run ends, also when the test fails.
//
// Without Chromium the test is skipped, unless HOP_REQUIRE_NETLAB=1 (as in
// CI), then it fails.
package chromiumtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Path returns the Chromium executable, or skips t (fails it with
// HOP_REQUIRE_NETLAB=1) when there is none.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "headless Chromium is not installed (Debian: apt-get install chromium); the dashboard rendering test needs it"
	if os.Getenv("HOP_REQUIRE_NETLAB") == "1" {
		t.Fatal(msg + " (HOP_REQUIRE_NETLAB=1)")
	}
	t.Skip(msg)
	return ""
}

// Options are what a run of Chromium does besides loading the page.
type Options struct {
	// Budget is the virtual time the page's scripts get: timers fire
	// and fetches complete within it, then Chromium acts. Virtual time
	// does not advance while a fetch is pending.
	Budget time.Duration
	// Timeout bounds the real time of the run (default 90 s).
	Timeout time.Duration
	// Screenshot, when set, is the PNG file to write instead of
	// dumping the DOM; Width x Height is the window size.
	Screenshot    string
	Width, Height int
}

// DumpDOM loads url and returns the DOM after opt.Budget of virtual time,
// serialised as HTML.
func DumpDOM(t testing.TB, url string, opt Options) string {
	t.Helper()
	out, err := run(t, url, opt, "--dump-dom")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Screenshot loads url and writes a PNG of the window after opt.Budget of
// virtual time to file.
func Screenshot(t testing.TB, url, file string, opt Options) {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	w, h := opt.Width, opt.Height
	if w <= 0 || h <= 0 {
		w, h = 1280, 900
	}
	os.Remove(abs)
	if _, err := run(t, url, opt, "--screenshot="+abs, "--window-size="+strconv.Itoa(w)+","+strconv.Itoa(h), "--hide-scrollbars"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		t.Fatalf("chromium wrote no screenshot to %s: %v", abs, err)
	}
}

// flags keep Chromium off the network and out of the user's profile.
var flags = []string{
	"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
	"--no-proxy-server", "--disable-background-networking", "--disable-component-update",
	"--no-first-run", "--no-default-browser-check", "--disable-sync", "--disable-extensions",
	"--disable-default-apps", "--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update",
	"--disable-domain-reliability", "--disable-breakpad", "--disable-crash-reporter", "--metrics-recording-only",
	"--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
	"--mute-audio", "--password-store=basic", "--use-mock-keychain",
}

func run(t testing.TB, url string, opt Options, action ...string) (string, error) {
	t.Helper()
	bin := Path(t)
	if opt.Timeout <= 0 {
		opt.Timeout = 90 * time.Second
	}
	dir := t.TempDir()
	args := append([]string{}, flags...)
	args = append(args, "--user-data-dir="+filepath.Join(dir, "profile"), "--crash-dumps-dir="+filepath.Join(dir, "crash"))
	if opt.Budget > 0 {
		args = append(args, "--virtual-time-budget="+strconv.FormatInt(opt.Budget.Milliseconds(), 10))
	}
	args = append(append(args, action...), url)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting chromium: %w", err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	kill := func() {
		once.Do(func() {
			// The browser's helpers (zygote, renderer) share its group.
			syscall.Kill(-pgid, syscall.SIGKILL)
		})
	}
	t.Cleanup(kill) // run kills before it returns; this covers a panic
	ctx, cancel := context.WithTimeout(context.Background(), opt.Timeout)
	defer cancel()
	select {
	case err := <-done:
		kill()
		if err != nil {
			return "", fmt.Errorf("chromium %s: %w\nstderr:\n%s", url, err, stderr.String())
		}
		return stdout.String(), nil
	case <-ctx.Done():
		kill()
		<-done
		return "", fmt.Errorf("chromium %s did not finish within %v (pid %d killed)\nstderr:\n%s", url, opt.Timeout, pgid, stderr.String())
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
