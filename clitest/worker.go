package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/databricks/cli/libs/testserver"
)

// worker is a jobworker.py process: one JSON request per line on its fd 3, one JSON answer
// per line on its fd 4. Its stdout and stderr (what the job code prints outside a task, and
// Spark's own logs) go to this program's stderr, the fake's log.
type worker struct {
	mu       sync.Mutex
	cmd      *exec.Cmd
	requests *os.File
	answers  *bufio.Reader
}

func startWorker(python string, args ...string) (*worker, error) {
	requestRead, requestWrite, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	answerRead, answerWrite, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(python, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{requestRead, answerWrite} // fd 3 and fd 4 of the worker
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %v: %w", python, args, err)
	}
	_ = requestRead.Close()
	_ = answerWrite.Close()
	return &worker{cmd: cmd, requests: requestWrite, answers: bufio.NewReader(answerRead)}, nil
}

// call sends one request and decodes its answer; one call at a time per worker.
func (w *worker) call(request any, answer any) error {
	line, err := json.Marshal(request)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.requests.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("job worker: %w", err)
	}
	reply, err := w.answers.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("job worker stopped: %w", err)
	}
	return json.Unmarshal(reply, answer)
}

// stop closes the request pipe (the worker exits at its end) and waits a little.
func (w *worker) stop() {
	_ = w.requests.Close()
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-done
	}
}

// routeAnswer is the service worker's answer to a proxied route.
type routeAnswer struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// recordRequests returns a RequestCallback that appends each request to path, one JSON object
// per line (the CLI's acceptance tests record out.requests.txt the same way), for the golden
// request logs of tests/test_request_goldens.py.
func recordRequests(path string) (func(*testserver.Request), error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	return func(req *testserver.Request) {
		entry := map[string]any{
			"workspace": workspaceKey(req.Token),
			"method":    req.Method,
			"path":      req.URL.Path,
		}
		if query := req.URL.RawQuery; query != "" {
			entry["query"] = query
		}
		if len(req.Body) > 0 {
			var body any
			if json.Unmarshal(req.Body, &body) == nil {
				entry["body"] = body
			} else {
				entry["body"] = fmt.Sprintf("<%d bytes>", len(req.Body))
			}
		}
		line, _ := json.Marshal(entry)
		mu.Lock()
		defer mu.Unlock()
		_, _ = file.Write(append(line, '\n'))
	}, nil
}

// workspaceKey is the part of a token that names its fake workspace (testserver's
// workspaceKeyForToken: the identity prefix removed).
func workspaceKey(token string) string {
	for _, prefix := range []string{testserver.UserNameTokenPrefix, testserver.ServicePrincipalTokenPrefix, testserver.GuestServicePrincipalTokenPrefix} {
		if rest, ok := strings.CutPrefix(token, prefix); ok {
			return rest
		}
	}
	return token
}
