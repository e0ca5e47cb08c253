package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// procWaitDelay bounds how long Wait waits for a killed process's output
// pipes, which a grandchild may hold open.
const procWaitDelay = 2 * time.Second

// A Proc is a process the lab started in a host's namespace. The lab reaps
// it; use Wait or Done rather than Cmd.Wait.
type Proc struct {
	// Cmd is the underlying command; Cmd.Process.Pid is the PID of the
	// program itself ("ip netns exec" execs it in place).
	Cmd *exec.Cmd

	out  *syncBuffer // nil when the caller set Stdout or Stderr
	done chan struct{}
	err  error // of Cmd.Wait, set before done is closed
}

// Wait waits for the process to exit and returns the result of Cmd.Wait. It
// may be called any number of times, from any goroutine.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process, for example os.Interrupt to check a clean
// shutdown. It returns os.ErrProcessDone if the process has been reaped.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill kills the process and waits for it. It returns nil if the process had
// already exited.
func (p *Proc) Kill() error {
	if err := p.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// Output returns the combined stdout and stderr captured so far, or nil if
// the caller set Cmd.Stdout or Cmd.Stderr before StartCmd.
func (p *Proc) Output() []byte {
	if p.out == nil {
		return nil
	}
	return p.out.Bytes()
}

// Command returns a command that runs name with args in the host's namespace
// through "ip netns exec". Set its Stdout, Stderr, Env or Dir as needed, then
// start it with StartCmd. The process gets SIGKILL if the test binary dies
// (Pdeathsig). Pdeathsig fires when the OS thread that started the process
// exits, which in Go happens early only if the starting goroutine exits while
// locked to its thread: do not start processes from such goroutines.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = procWaitDelay
	return cmd
}

// StartCmd starts a command made by Command and tracks it: Lab.Close kills it
// by PID and reaps it. If neither Stdout nor Stderr is set, both are captured
// and available from Proc.Output.
func (h *Host) StartCmd(cmd *exec.Cmd) (*Proc, error) {
	if len(cmd.Args) < 5 || !slices.Equal(cmd.Args[1:4], []string{"netns", "exec", h.ns}) {
		return nil, fmt.Errorf("netlab: StartCmd: command %q was not made by %s's Command", cmd.Args, h.name)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil && cmd.Stderr == nil {
		p.out = new(syncBuffer)
		cmd.Stdout, cmd.Stderr = p.out, p.out
	}

	l := h.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netlab: %s: starting %q: %w", h.name, cmd.Args[4:], err)
	}
	l.procs[p] = struct{}{}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		p.err = cmd.Wait()
		close(p.done)
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
	}()
	return p, nil
}

// Start starts name with args in the host's namespace, capturing its output
// (see Command and StartCmd).
func (h *Host) Start(ctx context.Context, name string, args ...string) (*Proc, error) {
	return h.StartCmd(h.Command(ctx, name, args...))
}

// Run runs name with args in the host's namespace to completion and returns
// its combined output. The error, if any, includes the output.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	p, err := h.Start(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	err = p.Wait()
	out := p.Output()
	if err != nil {
		return out, fmt.Errorf("netlab: %s: %s %q: %w: %s", h.name, name, args, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
