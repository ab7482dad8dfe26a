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
)

// addOverrides registers, before the defaults (the first registration of a route wins),
// the routes where this program differs from testserver's defaults:
//
//   - jobs/run-now records a run whose tasks all end SUCCESS without executing them (the
//     default runs wheel tasks in a uv venv on Python 3.10, which needs downloads). A wheel
//     task whose entry point is `registering` registers a new version of the Unity Catalog
//     model its named parameters name (catalog.schema.model_name), as the training task
//     does on a cluster; if that model does not exist the task fails, as it would there.
//   - Unity Catalog model versions can be listed, read and deleted (the defaults have no
//     such routes).
//   - Deleting a registered model that still has versions fails with Unity Catalog's error,
//     so a bundle destroy of a trained target fails here as it does in a workspace.
func addOverrides(server *testserver.Server, registering string) {
	versions := &modelVersions{byWorkspace: map[*testserver.FakeWorkspace]map[string][]catalog.ModelVersionInfo{}}

	server.Handle("POST", "/api/2.2/jobs/run-now", func(req testserver.Request) any {
		return runNow(req, server.URL, registering, versions)
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

var lastRunID atomic.Int64

// nextRunID hands out increasing ids, apart from the fake's own (time-based ones are larger).
func nextRunID() int64 {
	return lastRunID.Add(1) + 1_000_000
}

func runNow(req testserver.Request, baseURL, registering string, versions *modelVersions) any {
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
	var tasks []jobs.RunTask
	if job.Settings != nil {
		for _, task := range job.Settings.Tasks {
			state := &jobs.RunState{
				LifeCycleState: jobs.RunLifeCycleStateTerminated,
				ResultState:    jobs.RunResultStateSuccess,
			}
			if wheel := task.PythonWheelTask; wheel != nil && registering != "" && wheel.EntryPoint == registering {
				p := wheel.NamedParameters
				fullName := p["catalog"] + "." + p["schema"] + "." + p["model_name"]
				if !modelExists(w, fullName) {
					state.ResultState = jobs.RunResultStateFailed
					state.StateMessage = "RESOURCE_DOES_NOT_EXIST: registered model " + fullName + " does not exist"
				} else {
					versions.register(w, fullName, runID)
				}
			}
			tasks = append(tasks, jobs.RunTask{RunId: nextRunID(), TaskKey: task.TaskKey, State: state})
		}
	}

	var parameters []jobs.JobParameter
	if job.Settings != nil {
		for _, p := range job.Settings.Parameters {
			value := p.Default
			if v, ok := request.JobParameters[p.Name]; ok {
				value = v
			}
			parameters = append(parameters, jobs.JobParameter{Name: p.Name, Default: p.Default, Value: value})
		}
		slices.SortFunc(parameters, func(a, b jobs.JobParameter) int { return cmp.Compare(a.Name, b.Name) })
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

// modelVersions holds the Unity Catalog model versions of each fake workspace.
type modelVersions struct {
	mu          sync.Mutex
	byWorkspace map[*testserver.FakeWorkspace]map[string][]catalog.ModelVersionInfo
}

func (m *modelVersions) register(w *testserver.FakeWorkspace, fullName string, runID int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	models := m.byWorkspace[w]
	if models == nil {
		models = map[string][]catalog.ModelVersionInfo{}
		m.byWorkspace[w] = models
	}
	existing := models[fullName]
	next := 1
	if n := len(existing); n > 0 {
		next = existing[n-1].Version + 1
	}
	parts := strings.SplitN(fullName, ".", 3)
	models[fullName] = append(existing, catalog.ModelVersionInfo{
		CatalogName: parts[0],
		SchemaName:  parts[1],
		ModelName:   parts[2],
		Version:     next,
		RunId:       strconv.FormatInt(runID, 10),
		Status:      catalog.ModelVersionInfoStatusReady,
		CreatedAt:   time.Now().UnixMilli(),
	})
}

func (m *modelVersions) list(w *testserver.FakeWorkspace, fullName string) []catalog.ModelVersionInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.byWorkspace[w][fullName])
}

func (m *modelVersions) get(w *testserver.FakeWorkspace, fullName, version string) (catalog.ModelVersionInfo, bool) {
	for _, info := range m.list(w, fullName) {
		if strconv.Itoa(info.Version) == version {
			return info, true
		}
	}
	return catalog.ModelVersionInfo{}, false
}

func (m *modelVersions) remove(w *testserver.FakeWorkspace, fullName, version string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	existing := m.byWorkspace[w][fullName]
	for i, info := range existing {
		if strconv.Itoa(info.Version) == version {
			m.byWorkspace[w][fullName] = slices.Delete(existing, i, i+1)
			return true
		}
	}
	return false
}
