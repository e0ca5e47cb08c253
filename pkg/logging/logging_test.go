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
	log, closeLog, err := New("warn", path)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	closeLog()
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "hidden") || !strings.Contains(string(b), "msg=shown k=v") {
		t.Fatalf("log file:\n%s", b)
	}
}

func TestBadLevelIsAnError(t *testing.T) {
	if _, _, err := New("verbose", "stderr"); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := New("info", "/nonexistent-dir/x.log"); err == nil {
		t.Fatal("unwritable log.to accepted")
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
		log, closeLog, err := New("info", c.to)
		if err == nil {
			log.Info("hello", "to", c.to)
			err = closeLog()
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
	if _, _, err := New("verbose", path); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("a bad level created %s", path)
	}
}
