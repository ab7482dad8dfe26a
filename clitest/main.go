// Command fakeworkspace serves the Databricks CLI's own fake workspace
// (github.com/databricks/cli/libs/testserver, the server the CLI's acceptance tests
// deploy bundles against) on 127.0.0.1, for the template's real-CLI tests.
//
// It prints its base URL as the first line on stdout, serves until SIGTERM or
// SIGINT, and exits 1 if any request reached a route that has no handler (the
// default not-found handler reports those through TestingT.Errorf).
//
// Job runs execute the code the CLI deployed: the Jobs service's part is jobs.go, the
// compute is jobworker.py (one process runs the tasks, another answers for the registry
// and tables the job code wrote), run with -python, the stand-in for the runtime.
// A few routes behave as the real service does where the fake's defaults differ or are
// missing; each is listed, with its source, in docs/decisions.md ("The fake workspace")
// and implemented in overrides.go and refusals.go.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/databricks/cli/libs/testserver"
)

func main() {
	python := flag.String("python", "python3", "the Python of the stand-in runtime (the template's .venv)")
	workerScript := flag.String("worker", "", "jobworker.py (default: beside this program's source, clitest/)")
	runtimePath := flag.String("runtime", "", "folder holding the mlops_local package the runtime provides")
	stateRoot := flag.String("state", "", "folder for the workspaces' state (default: a temporary folder, removed at exit)")
	requestLog := flag.String("requests", "", "append every request (workspace, method, path, body) to this file as JSON lines")
	extraPrincipals := flag.String("service-principals", "",
		"comma-separated application IDs of service principals the workspace knows, besides the fake's own")
	flag.Parse()

	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "fakeworkspace: "+format+"\n", args...)
		os.Exit(2)
	}
	if *workerScript == "" || *runtimePath == "" {
		fail("-worker and -runtime are required (make fake passes them)")
	}
	root := *stateRoot
	if root == "" {
		dir, err := os.MkdirTemp("", "fakeworkspace-state-")
		if err != nil {
			fail("%s", err)
		}
		root = dir
	}
	removeState := func() {
		if *stateRoot == "" {
			_ = os.RemoveAll(root)
		}
	}
	compute, err := startWorker(*python, *workerScript, "compute", *runtimePath, filepath.Join(root, "libraries"))
	if err != nil {
		fail("%s", err)
	}
	service, err := startWorker(*python, *workerScript, "service", *runtimePath)
	if err != nil {
		fail("%s", err)
	}

	known := principals{servicePrincipals: []string{testserver.TestUserSP.UserName}}
	for _, id := range strings.Split(*extraPrincipals, ",") {
		if id = strings.TrimSpace(id); id != "" {
			known.servicePrincipals = append(known.servicePrincipals, id)
		}
	}

	t := newProcessT()
	server := testserver.New(t)
	runner := &jobRunner{compute: compute, stateRoot: root, url: server.URL, states: map[*testserver.FakeWorkspace]string{}, data: map[*testserver.FakeWorkspace]string{}}
	addOverrides(server, runner, service, known)
	if *requestLog != "" {
		record, err := recordRequests(*requestLog)
		if err != nil {
			fail("%s", err)
		}
		server.RequestCallback = record
	}
	testserver.AddDefaultHandlers(server)

	// Listen for the signal before the URL is out: a caller may stop the fake right after reading it.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println(server.URL)
	<-stop

	// Both workers at once: each takes a Python exit (and the compute worker a JVM's) to stop.
	var stopping sync.WaitGroup
	for _, w := range []*worker{compute, service} {
		stopping.Add(1)
		go func() { defer stopping.Done(); w.stop() }()
	}
	stopping.Wait()
	t.runCleanups()
	removeState()
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
