// Command fakeworkspace serves the Databricks CLI's own fake workspace
// (github.com/databricks/cli/libs/testserver, the server the CLI's acceptance tests
// deploy bundles against) on 127.0.0.1, for the template's real-CLI tests.
//
// It prints its base URL as the first line on stdout, serves until SIGTERM or
// SIGINT, and exits 1 if any request reached a route that has no handler (the
// default not-found handler reports those through TestingT.Errorf).
//
// A few routes behave as the real service does where the fake's defaults differ
// or are missing; each is listed, with its source, in docs/decisions.md
// ("The real CLI's fake workspace") and implemented in overrides.go.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/databricks/cli/libs/testserver"
)

func main() {
	effects := flag.Bool("task-effects", true,
		"a job run leaves what its train, copy_model and deploy tasks leave on a cluster (overrides.go)")
	flag.Parse()

	t := newProcessT()
	server := testserver.New(t)
	addOverrides(server, *effects)
	testserver.AddDefaultHandlers(server)

	fmt.Println(server.URL)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop

	t.runCleanups()
	if failures := t.failures(); failures > 0 {
		fmt.Fprintf(os.Stderr, "fakeworkspace: %d request(s) failed in the fake workspace (see above)\n", failures)
		os.Exit(1)
	}
}

// processT is the TestingT that testserver.New needs, for a long-running process:
// logs go to stderr, errors are counted, cleanups run at shutdown.
type processT struct {
	ctx      context.Context
	cleanups []func()
	errors   int
	mu       chan struct{}
}

func newProcessT() *processT {
	t := &processT{ctx: context.Background(), mu: make(chan struct{}, 1)}
	return t
}

func (t *processT) lock() func() {
	t.mu <- struct{}{}
	return func() { <-t.mu }
}

func (t *processT) Log(args ...any)                 { fmt.Fprintln(os.Stderr, args...) }
func (t *processT) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (t *processT) Error(args ...any) {
	defer t.lock()()
	t.errors++
	fmt.Fprintln(os.Stderr, append([]any{"ERROR:"}, args...)...)
}

func (t *processT) Errorf(format string, args ...any) {
	defer t.lock()()
	t.errors++
	fmt.Fprintf(os.Stderr, "ERROR: "+format+"\n", args...)
}

func (t *processT) Fatal(args ...any) {
	t.Error(args...)
	os.Exit(1)
}

func (t *processT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	os.Exit(1)
}

func (t *processT) Skip(args ...any)                 { t.Log(args...) }
func (t *processT) Skipf(format string, args ...any) { t.Logf(format, args...) }
func (t *processT) FailNow()                         { t.Fatal("FailNow") }
func (t *processT) Context() context.Context         { return t.ctx }
func (t *processT) Helper()                          {}

func (t *processT) Cleanup(f func()) {
	defer t.lock()()
	t.cleanups = append(t.cleanups, f)
}

func (t *processT) Setenv(key, value string) { _ = os.Setenv(key, value) }

func (t *processT) TempDir() string {
	dir, err := os.MkdirTemp("", "fakeworkspace-")
	if err != nil {
		t.Fatalf("temp dir: %s", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (t *processT) runCleanups() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func (t *processT) failures() int {
	defer t.lock()()
	return t.errors
}
