package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databricks/cli/libs/testserver"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"github.com/databricks/databricks-sdk-go/service/ml"
	"github.com/databricks/databricks-sdk-go/service/workspace"
)

// addOverrides registers, before the defaults (the first registration of a route wins),
// the routes where this program differs from testserver's defaults:
//
//   - jobs/run-now records a run whose tasks all end SUCCESS without executing them (the
//     default runs wheel tasks in a uv venv on Python 3.10, which needs downloads). With
//     task effects on, three wheel entry points leave in the workspace what their code
//     leaves on a cluster (taskEffects): `train` logs an MLflow run tagged with the job's
//     git_commit, target and run id and registers a new version of the Unity Catalog model
//     its named parameters name (catalog.schema.model_name); `copy_model` registers a new
//     version there from source_model (source_version, else its champion), with the
//     source's run; `deploy` points the model's `champion` alias at its newest version. A
//     task whose model does not exist fails, as it would there.
//   - Unity Catalog model versions can be listed, read (also by alias) and deleted, and
//     MLflow runs read (the defaults have no such routes).
//   - workspace/get-status reports a file's modified_at (epoch milliseconds of its last
//     import-file), as the Workspace API does for files; the default leaves it out.
//   - Deleting a registered model that still has versions fails with Unity Catalog's error,
//     so a bundle destroy of a trained target fails here as it does in a workspace.
func addOverrides(server *testserver.Server, effects bool) {
	versions := newModelVersions()

	server.Handle("POST", "/api/2.2/jobs/run-now", func(req testserver.Request) any {
		return runNow(req, server.URL, effects, versions)
	})
	modified := &modifiedTimes{at: map[string]int64{}}
	server.Handle("POST", "/api/2.0/workspace-files/import-file/{path...}", func(req testserver.Request) any {
		path := req.Vars["path"]
		response := req.Workspace.WorkspaceFilesImportFile(path, req.Body, req.URL.Query().Get("overwrite") == "true")
		modified.touch(req.Workspace, "/"+strings.TrimPrefix(path, "/"))
		return response
	})
	server.Handle("GET", "/api/2.0/workspace/get-status", func(req testserver.Request) any {
		path := req.URL.Query().Get("path")
		response := req.Workspace.WorkspaceGetStatus(path)
		if info, ok := response.Body.(workspace.ObjectInfo); ok && info.ObjectType == workspace.ObjectTypeFile {
			info.ModifiedAt = modified.of(req.Workspace, info.Path)
			response.Body = info
		}
		return response
	})
	server.Handle("GET", "/api/2.1/unity-catalog/models/{full_name}/aliases/{alias}", func(req testserver.Request) any {
		info, ok := versions.byAlias(req.Workspace, req.Vars["full_name"], req.Vars["alias"])
		if !ok {
			return notFound("alias %s of %s", req.Vars["alias"], req.Vars["full_name"])
		}
		return info
	})
	server.Handle("GET", "/api/2.0/mlflow/runs/get", func(req testserver.Request) any {
		run, ok := versions.run(req.Workspace, req.URL.Query().Get("run_id"))
		if !ok {
			return notFound("run %s", req.URL.Query().Get("run_id"))
		}
		return ml.GetRunResponse{Run: &run}
	})
	server.Handle("GET", "/api/2.1/unity-catalog/models/{full_name}/versions", func(req testserver.Request) any {
		return catalog.ListModelVersionsResponse{ModelVersions: versions.list(req.Workspace, req.Vars["full_name"])}
	})
	server.Handle("GET", "/api/2.1/unity-catalog/models/{full_name}/versions/{version}", func(req testserver.Request) any {
		info, ok := versions.get(req.Workspace, req.Vars["full_name"], req.Vars["version"])
		if !ok {
			return notFound("model version %s of %s", req.Vars["version"], req.Vars["full_name"])
		}
		return info
	})
	server.Handle("DELETE", "/api/2.1/unity-catalog/models/{full_name}/versions/{version}", func(req testserver.Request) any {
		if !versions.remove(req.Workspace, req.Vars["full_name"], req.Vars["version"]) {
			return notFound("model version %s of %s", req.Vars["version"], req.Vars["full_name"])
		}
		return testserver.Response{}
	})
	server.Handle("DELETE", "/api/2.1/unity-catalog/models/{full_name}", func(req testserver.Request) any {
		fullName := req.Vars["full_name"]
		if n := len(versions.list(req.Workspace, fullName)); n > 0 {
			return testserver.Response{
				StatusCode: http.StatusBadRequest,
				Body: map[string]string{
					"error_code": "INVALID_STATE",
					"message": fmt.Sprintf("Function '%s' is not empty. The function has %d model versions(s)",
						fullName, n),
				},
			}
		}
		return testserver.MapDelete(req.Workspace, req.Workspace.RegisteredModels, fullName)
	})
}

// modifiedTimes records when each workspace file was last imported.
type modifiedTimes struct {
	mu sync.Mutex
	at map[string]int64
}

func (m *modifiedTimes) key(w *testserver.FakeWorkspace, path string) string {
	return fmt.Sprintf("%p:%s", w, path)
}

func (m *modifiedTimes) touch(w *testserver.FakeWorkspace, path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.at[m.key(w, path)] = time.Now().UnixMilli()
}

func (m *modifiedTimes) of(w *testserver.FakeWorkspace, path string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.at[m.key(w, path)]
}

var lastRunID atomic.Int64

// nextRunID hands out increasing ids, apart from the fake's own (time-based ones are larger).
func nextRunID() int64 {
	return lastRunID.Add(1) + 1_000_000
}

func runNow(req testserver.Request, baseURL string, effects bool, versions *modelVersions) any {
	var request jobs.RunNow
	if err := json.Unmarshal(req.Body, &request); err != nil {
		return testserver.Response{StatusCode: http.StatusBadRequest, Body: "request parsing error: " + err.Error()}
	}
	w := req.Workspace

	// The workspace lock is taken per read below and once for the write at the end.
	job, ok := jobByID(w, request.JobId)
	if !ok {
		return notFound("job %d", request.JobId)
	}

	runID := nextRunID()
	var parameters []jobs.JobParameter
	values := map[string]string{"job.run_id": strconv.FormatInt(runID, 10)}
	if job.Settings != nil {
		for _, p := range job.Settings.Parameters {
			value := p.Default
			if v, ok := request.JobParameters[p.Name]; ok {
				value = v
			}
			parameters = append(parameters, jobs.JobParameter{Name: p.Name, Default: p.Default, Value: value})
			values["job.parameters."+p.Name] = value
		}
		slices.SortFunc(parameters, func(a, b jobs.JobParameter) int { return cmp.Compare(a.Name, b.Name) })
	}

	var tasks []jobs.RunTask
	failed := false
	if job.Settings != nil {
		for _, task := range inDependencyOrder(job.Settings.Tasks) {
			state := &jobs.RunState{
				LifeCycleState: jobs.RunLifeCycleStateTerminated,
				ResultState:    jobs.RunResultStateSuccess,
			}
			if wheel := task.PythonWheelTask; effects && wheel != nil && !failed {
				named := map[string]string{}
				for key, value := range wheel.NamedParameters {
					named[key] = dynamicValue(value, values)
				}
				if err := versions.taskEffect(w, wheel.EntryPoint, named, runID); err != nil {
					state.ResultState = jobs.RunResultStateFailed
					state.StateMessage = err.Error()
					failed = true
				}
			} else if failed {
				state.ResultState = jobs.RunResultStateUpstreamFailed
			}
			tasks = append(tasks, jobs.RunTask{RunId: nextRunID(), TaskKey: task.TaskKey, State: state})
		}
	}

	runName := "run"
	if job.Settings != nil && job.Settings.Name != "" {
		runName = job.Settings.Name
	}

	defer w.LockUnlock()()
	w.JobRuns[runID] = jobs.Run{
		RunId:         runID,
		JobId:         request.JobId,
		RunName:       runName,
		RunType:       jobs.RunTypeJobRun,
		RunPageUrl:    fmt.Sprintf("%s/?o=900800700600#job/%d/run/%d", baseURL, request.JobId, runID),
		State:         &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateRunning},
		Tasks:         tasks,
		JobParameters: parameters,
	}
	return jobs.RunNowResponse{RunId: runID}
}

// inDependencyOrder orders tasks so that each comes after the tasks it depends on (the
// fake stores a job's tasks sorted by key); otherwise in their stored order.
func inDependencyOrder(tasks []jobs.Task) []jobs.Task {
	done := map[string]bool{}
	var ordered []jobs.Task
	for len(ordered) < len(tasks) {
		progressed := false
		for _, task := range tasks {
			if done[task.TaskKey] {
				continue
			}
			ready := true
			for _, dependency := range task.DependsOn {
				ready = ready && done[dependency.TaskKey]
			}
			if ready {
				done[task.TaskKey] = true
				ordered = append(ordered, task)
				progressed = true
			}
		}
		if !progressed { // a cycle: the real service refuses such a job at create
			for _, task := range tasks {
				if !done[task.TaskKey] {
					done[task.TaskKey] = true
					ordered = append(ordered, task)
				}
			}
		}
	}
	return ordered
}

// dynamicValue fills in the job's {{job.parameters.<name>}} and {{job.run_id}} references.
func dynamicValue(value string, values map[string]string) string {
	for name, v := range values {
		value = strings.ReplaceAll(value, "{{"+name+"}}", v)
	}
	return value
}

func jobByID(w *testserver.FakeWorkspace, id int64) (jobs.Job, bool) {
	defer w.LockUnlock()()
	job, ok := w.Jobs[id]
	return job, ok
}

func modelExists(w *testserver.FakeWorkspace, fullName string) bool {
	defer w.LockUnlock()()
	_, ok := w.RegisteredModels[fullName]
	return ok
}

func notFound(format string, args ...any) testserver.Response {
	return testserver.Response{
		StatusCode: http.StatusNotFound,
		Body: map[string]string{
			"error_code": "RESOURCE_DOES_NOT_EXIST",
			"message":    fmt.Sprintf(format, args...) + " does not exist",
		},
	}
}

// modelVersions holds, per fake workspace, the Unity Catalog model versions and aliases and
// the MLflow runs that the task effects leave behind.
type modelVersions struct {
	mu          sync.Mutex
	byWorkspace map[*testserver.FakeWorkspace]*registry
}

type registry struct {
	versions map[string][]catalog.ModelVersionInfo
	aliases  map[string]map[string]int
	runs     map[string]ml.Run
}

func newModelVersions() *modelVersions {
	return &modelVersions{byWorkspace: map[*testserver.FakeWorkspace]*registry{}}
}

// of returns the workspace's registry; the caller holds m.mu.
func (m *modelVersions) of(w *testserver.FakeWorkspace) *registry {
	r := m.byWorkspace[w]
	if r == nil {
		r = &registry{versions: map[string][]catalog.ModelVersionInfo{}, aliases: map[string]map[string]int{}, runs: map[string]ml.Run{}}
		m.byWorkspace[w] = r
	}
	return r
}

// taskEffect leaves in the workspace what the wheel entry point's code leaves on a cluster.
func (m *modelVersions) taskEffect(w *testserver.FakeWorkspace, entryPoint string, named map[string]string, jobRunID int64) error {
	switch entryPoint {
	case "train", "copy_model", "deploy":
	default:
		return nil
	}
	model := named["catalog"] + "." + named["schema"] + "." + named["model_name"]
	if !modelExists(w, model) {
		return fmt.Errorf("RESOURCE_DOES_NOT_EXIST: registered model %s does not exist", model)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.of(w)
	switch entryPoint {
	case "train":
		runID := fmt.Sprintf("%032x", jobRunID)
		r.runs[runID] = ml.Run{
			Info: &ml.RunInfo{RunId: runID, Status: ml.RunInfoStatusFinished},
			Data: &ml.RunData{Tags: []ml.RunTag{
				{Key: "git_commit", Value: named["git_commit"]},
				{Key: "target", Value: named["target"]},
				{Key: "job_run_id", Value: named["job_run_id"]},
			}},
		}
		r.register(model, runID)
	case "copy_model":
		source := named["source_model"]
		version, err := strconv.Atoi(named["source_version"])
		if named["source_version"] == "" {
			version, err = r.aliases[source]["champion"], nil
		}
		info, ok := r.find(source, version)
		if err != nil || !ok {
			return fmt.Errorf("RESOURCE_DOES_NOT_EXIST: model version %s of %s does not exist", named["source_version"], source)
		}
		r.register(model, info.RunId)
	case "deploy":
		existing := r.versions[model]
		if len(existing) == 0 {
			return fmt.Errorf("%s has no version to deploy", model)
		}
		if r.aliases[model] == nil {
			r.aliases[model] = map[string]int{}
		}
		r.aliases[model]["champion"] = existing[len(existing)-1].Version
	}
	return nil
}

func (r *registry) register(fullName, runID string) {
	existing := r.versions[fullName]
	next := 1
	if n := len(existing); n > 0 {
		next = existing[n-1].Version + 1
	}
	parts := strings.SplitN(fullName, ".", 3)
	r.versions[fullName] = append(existing, catalog.ModelVersionInfo{
		CatalogName: parts[0],
		SchemaName:  parts[1],
		ModelName:   parts[2],
		Version:     next,
		RunId:       runID,
		Status:      catalog.ModelVersionInfoStatusReady,
		CreatedAt:   time.Now().UnixMilli(),
	})
}

func (r *registry) find(fullName string, version int) (catalog.ModelVersionInfo, bool) {
	for _, info := range r.versions[fullName] {
		if info.Version == version {
			return info, true
		}
	}
	return catalog.ModelVersionInfo{}, false
}

func (m *modelVersions) list(w *testserver.FakeWorkspace, fullName string) []catalog.ModelVersionInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.of(w).versions[fullName])
}

func (m *modelVersions) get(w *testserver.FakeWorkspace, fullName, version string) (catalog.ModelVersionInfo, bool) {
	number, err := strconv.Atoi(version)
	if err != nil {
		return catalog.ModelVersionInfo{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.of(w).find(fullName, number)
}

func (m *modelVersions) byAlias(w *testserver.FakeWorkspace, fullName, alias string) (catalog.ModelVersionInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.of(w)
	version, ok := r.aliases[fullName][alias]
	if !ok {
		return catalog.ModelVersionInfo{}, false
	}
	return r.find(fullName, version)
}

func (m *modelVersions) run(w *testserver.FakeWorkspace, runID string) (ml.Run, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	run, ok := m.of(w).runs[runID]
	return run, ok
}

func (m *modelVersions) remove(w *testserver.FakeWorkspace, fullName, version string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.of(w)
	for i, info := range r.versions[fullName] {
		if strconv.Itoa(info.Version) == version {
			r.versions[fullName] = slices.Delete(r.versions[fullName], i, i+1)
			for alias, v := range r.aliases[fullName] {
				if v == info.Version {
					delete(r.aliases[fullName], alias)
				}
			}
			return true
		}
	}
	return false
}
