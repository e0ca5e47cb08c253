package logging

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLevelsAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hop.log")
	log, err := New(Options{Level: "warn", To: path})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if err := log.SetLevel("verbose"); err == nil {
		t.Error("SetLevel accepted a bad level")
	}
	if err := log.SetLevel("info"); err != nil {
		t.Fatal(err)
	}
	log.Info("now shown")
	log.Debug("still hidden")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "hidden") || !strings.Contains(string(b), "msg=shown k=v") || !strings.Contains(string(b), `msg="now shown"`) {
		t.Fatalf("log file:\n%s", b)
	}
}

func TestBadLevelIsAnError(t *testing.T) {
	if _, err := New(Options{Level: "verbose", To: "stderr"}); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(Options{Level: "info", To: "/nonexistent-dir/x.log"}); err == nil {
		t.Fatal("unwritable log.to accepted")
	}
	if _, err := New(Options{Level: "info", To: "/nonexistent-dir/x.log", MaxDays: 3}); err == nil {
		t.Fatal("unwritable rotated log.to accepted")
	}
	for _, to := range []string{"", "stderr", "stdout", "console"} {
		if _, err := New(Options{Level: "info", To: to, MaxDays: 2}); err == nil || !strings.Contains(err.Error(), "only a log file is rotated") {
			t.Errorf("log.to %q with maxDays: err = %v", to, err)
		}
	}
	if _, err := New(Options{Level: "info", To: filepath.Join(t.TempDir(), "x.log"), MaxDays: -1}); err == nil {
		t.Error("negative maxDays accepted")
	}
}

// TestStreams checks where each stream name writes, by swapping
// os.Stdout and os.Stderr for pipes while New runs and logs.
func TestStreams(t *testing.T) {
	for _, c := range []struct{ to, stream string }{
		{"stderr", "stderr"},
		{"", "stderr"},
		{"stdout", "stdout"},
		{"console", "stdout"}, // frp's value
	} {
		outR, outW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		oldOut, oldErr := os.Stdout, os.Stderr
		os.Stdout, os.Stderr = outW, errW
		log, err := New(Options{Level: "info", To: c.to})
		if err == nil {
			log.Info("hello", "to", c.to)
			err = log.Close()
		}
		os.Stdout, os.Stderr = oldOut, oldErr
		outW.Close()
		errW.Close()
		if err != nil {
			t.Fatalf("log.to %q: %v", c.to, err)
		}
		out, _ := io.ReadAll(outR)
		errOut, _ := io.ReadAll(errR)
		got := map[string]string{"stdout": string(out), "stderr": string(errOut)}
		for stream, text := range got {
			if want := stream == c.stream; strings.Contains(text, "msg=hello") != want {
				t.Errorf("log.to %q: %s = %q; want the line only on %s", c.to, stream, text, c.stream)
			}
		}
	}
}

func TestBadLevelCreatesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hop.log")
	if _, err := New(Options{Level: "verbose", To: path, MaxDays: 2}); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("a bad level created %s", path)
	}
}
