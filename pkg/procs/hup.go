package procs

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// HUP holds the SIGHUPs a process receives. By default SIGHUP ends a Go
// program without a word (a closed terminal, or an operator who expects a
// reload, sends it); from CatchHUP on it no longer does.
type HUP struct {
	ch chan os.Signal
}

// CatchHUP makes SIGHUP harmless for the rest of the process's life; call
// it first thing, before the logger exists. Handle acts on them (hops
// and hopc reload their config files).
func CatchHUP() *HUP {
	h := &HUP{ch: make(chan os.Signal, 1)}
	signal.Notify(h.ch, syscall.SIGHUP)
	return h
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
