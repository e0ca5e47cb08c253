package logging

import (
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
