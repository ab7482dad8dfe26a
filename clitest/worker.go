package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
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
