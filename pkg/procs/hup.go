package procs

import (
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// HUPMessage is the line logged for each SIGHUP.
const HUPMessage = "SIGHUP ignored: hop has no reload yet; restart to apply a new config"

// HUP holds the SIGHUPs a process receives. By default SIGHUP ends a Go
// program without a word (a closed terminal, or an operator who expects a
// reload, sends it); from CatchHUP on it no longer does.
type HUP struct {
	ch chan os.Signal
}

// CatchHUP makes SIGHUP harmless for the rest of the process's life; call
// it first thing, before the logger exists. Log reports the signals;
// Handle acts on them (hops reloads its config).
func CatchHUP() *HUP {
	h := &HUP{ch: make(chan os.Signal, 1)}
	signal.Notify(h.ch, syscall.SIGHUP)
	return h
}

// Log logs HUPMessage for every SIGHUP, one caught before Log included,
// until stop is called. stop waits for the logging goroutine; SIGHUP stays
// caught (and silently ignored) after it.
func (h *HUP) Log(log *slog.Logger) (stop func()) {
	return h.Handle(func() { log.Warn(HUPMessage) })
}

// Handle calls fn for every SIGHUP, one caught before Handle included, one
// call at a time, until stop is called. stop waits for a call in progress;
// SIGHUP stays caught (and silently ignored) after it.
func (h *HUP) Handle(fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-h.ch:
				fn()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
