package chromiumtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Browser is a headless Chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: commands on its fd 3, answers on its
// fd 4, each message JSON ended by a NUL byte), for tests that click.
// It is killed, with its process group, when the test ends.
type Browser struct {
	t      testing.TB
	cmd    *exec.Cmd
	w      *os.File // to Chromium's fd 3
	r      *os.File // from Chromium's fd 4
	stderr lockedBuffer
	done   chan struct{} // the reader ended
	exited chan struct{} // the process ended

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan reply
	readErr error
	killed  sync.Once
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Start runs Chromium for t; it skips t without Chromium (see Path).
func Start(t testing.TB) *Browser {
	t.Helper()
	bin := Path(t)
	dir := t.TempDir()
	args := append([]string{}, flags...)
	args = append(args, "--remote-debugging-pipe", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--crash-dumps-dir="+filepath.Join(dir, "crash"), "about:blank")
	cmdR, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r, ansW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &Browser{t: t, w: w, r: r, done: make(chan struct{}), exited: make(chan struct{}), waiting: map[int]chan reply{}}
	b.cmd = exec.Command(bin, args...)
	b.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.ExtraFiles = []*os.File{cmdR, ansW} // fd 3, fd 4
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	cmdR.Close()
	ansW.Close()
	go func() {
		b.cmd.Wait()
		close(b.exited)
	}()
	go b.read()
	t.Cleanup(b.close)
	return b
}

func (b *Browser) close() {
	b.killed.Do(func() {
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
		b.w.Close()
		<-b.done
		b.r.Close()
	})
}

// read delivers answers to the commands waiting for them; events are
// dropped.
func (b *Browser) read() {
	defer close(b.done)
	br := bufio.NewReader(b.r)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = fmt.Errorf("chromium's DevTools pipe ended: %v\nstderr:\n%s", err, b.stderr.String())
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID int `json:"id"`
			reply
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.reply
		}
	}
}

// call sends a DevTools command (to a page's session when session is
// set) and decodes its result into out.
func (b *Browser) call(session, method string, params, out any) error {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return b.readErr
	}
	b.nextID++
	id := b.nextID
	ch := make(chan reply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.w.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: writing to chromium: %w", method, err)
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.readErr
		}
		if rep.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, rep.Error.Message, rep.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(rep.Result, out)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: chromium did not answer within 30s", method)
	}
}

// Page is a tab of a Browser.
type Page struct {
	b       *Browser
	session string
}

// recordCSP runs in every document before its own scripts and keeps the
// Content-Security-Policy violations of the page.
const recordCSP = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});`

// Open opens url in a new tab, recording the page's CSP violations (see
// CSPViolations).
func (b *Browser) Open(url string) (*Page, error) {
	var tgt struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &tgt); err != nil {
		return nil, err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}, &att); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: att.SessionID}
	if err := b.call(p.session, "Page.enable", map[string]any{}, nil); err != nil {
		return nil, err
	}
	if err := b.call(p.session, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": recordCSP}, nil); err != nil {
		return nil, err
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(p.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return nil, err
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("loading %s: %s", url, nav.ErrorText)
	}
	return p, nil
}

// CSPViolations returns what the page's Content-Security-Policy blocked
// so far.
func (p *Page) CSPViolations() ([]string, error) {
	var v *[]string
	if err := p.Eval("window.__cspViolations", &v); err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("the page has no record of CSP violations: the recorder did not run")
	}
	return *v, nil
}

// Eval evaluates the JavaScript expression expr in the page (awaiting it
// if it is a promise) and decodes its value into out (if not nil).
func (p *Page) Eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.b.call(p.session, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &res)
	if err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("%s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out != nil && len(res.Result.Value) > 0 {
		return json.Unmarshal(res.Result.Value, out)
	}
	return nil
}

// WaitFor polls the expression cond every 50 ms until it is true, or
// fails after d with the last value.
func (p *Page) WaitFor(cond string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var ok bool
		err := p.Eval("!!("+cond+")", &ok)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s (last error: %v)", d, cond, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
