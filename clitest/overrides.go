package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/databricks/cli/libs/testserver"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/workspace"
)

// addOverrides registers, before the defaults (the first registration of a route wins),
// the routes where this program differs from testserver's defaults:
//
//   - jobs/run-now and runs/get: job runs execute the tasks' code (jobs.go); the default
//     runs wheel tasks with runpy.run_module(package_name), so it ignores entry_point, runs
//     tasks in listed order and runs the tasks after a failure.
//   - Unity Catalog model versions (list, get, by alias, delete) and MLflow runs/get are
//     answered from the workspace's MLflow registry, i.e. from what the job code wrote; the
//     defaults have no such routes. Deleting a registered model that still has versions fails
//     with Unity Catalog's error, so a bundle destroy of a trained target fails here as it
//     does in a workspace.
//   - Tables and data-quality monitors are answered by the local runner's stand-in workspace
//     of the same state (the tables are the ones the job code wrote).
//   - The refusals of refusals.go: jobs/create and jobs/reset, Unity Catalog grants,
//     registered model names, experiment folders.
//   - workspace/get-status reports a file's modified_at (epoch milliseconds of its last
//     import-file), as the Workspace API does for files; the default leaves it out.
func addOverrides(server *testserver.Server, runner *jobRunner, service *worker, known principals) {
	server.Handle("POST", "/api/2.2/jobs/run-now", runner.runNow)
	server.Handle("GET", "/api/2.2/jobs/runs/get", getRun)
	server.Handle("POST", "/fake/data", runner.useData)

	server.Handle("POST", "/api/2.2/jobs/create", func(req testserver.Request) any {
		if refusal := known.checkJob(req.Body, false); refusal != nil {
			return *refusal
		}
		return req.Workspace.JobsCreate(req)
	})
	server.Handle("POST", "/api/2.2/jobs/reset", func(req testserver.Request) any {
		if refusal := known.checkJob(req.Body, true); refusal != nil {
			return *refusal
		}
		return req.Workspace.JobsReset(req)
	})
	server.Handle("PATCH", "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}", func(req testserver.Request) any {
		if refusal := checkGrants(req.Vars["securable_type"], req.Body); refusal != nil {
			return *refusal
		}
		return req.Workspace.GrantsUpdate(req, req.Vars["securable_type"], req.Vars["full_name"])
	})
	server.Handle("POST", "/api/2.1/unity-catalog/models", func(req testserver.Request) any {
		if refusal := checkModelName(req.Body); refusal != nil {
			return *refusal
		}
		if refusal := checkSchemaExists(req.Workspace, req.Body); refusal != nil {
			return *refusal
		}
		return req.Workspace.RegisteredModelsCreate(req)
	})
	server.Handle("POST", "/api/2.0/mlflow/experiments/create", func(req testserver.Request) any {
		if refusal := checkExperimentParent(req.Workspace, req.Body); refusal != nil {
			return *refusal
		}
		return req.Workspace.ExperimentCreate(req)
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

	// Permissions API: PATCH adds or changes the entries it names and keeps the others (PUT
	// replaces the whole list); the default handlers have only GET and PUT.
	for _, path := range []string{"/api/2.0/permissions/{object_type}/{object_id}", "/api/2.0/permissions/{prefix}/{object_type}/{object_id}"} {
		server.Handle("PATCH", path, updatePermissions)
	}

	// What the job code wrote, answered by the service worker from the workspace's state.
	proxy := func(op string) func(req testserver.Request) any {
		return func(req testserver.Request) any {
			return forward(service, op, runner.stateOf(req.Workspace), req.Method, req.URL.Path, req.URL.Query(), req.Body)
		}
	}
	for _, route := range []struct{ method, path string }{
		{"GET", "/api/2.1/unity-catalog/models/{full_name}/versions"},
		{"GET", "/api/2.1/unity-catalog/models/{full_name}/versions/{version}"},
		{"DELETE", "/api/2.1/unity-catalog/models/{full_name}/versions/{version}"},
		{"GET", "/api/2.1/unity-catalog/models/{full_name}/aliases/{alias}"},
		{"GET", "/api/2.0/mlflow/runs/get"},
	} {
		server.Handle(route.method, route.path, proxy("registry"))
	}
	for _, route := range []struct{ method, path string }{
		{"GET", "/api/2.1/unity-catalog/tables/{full_name}"},
		{"POST", "/api/data-quality/v1/monitors"},
		{"GET", "/api/data-quality/v1/monitors/{object_type}/{object_id}"},
		{"PATCH", "/api/data-quality/v1/monitors/{object_type}/{object_id}"},
		{"DELETE", "/api/data-quality/v1/monitors/{object_type}/{object_id}"},
		{"POST", "/api/data-quality/v1/monitors/{object_type}/{object_id}/refreshes"},
	} {
		server.Handle(route.method, route.path, proxy("stand_in"))
	}
	server.Handle("DELETE", "/api/2.1/unity-catalog/models/{full_name}", func(req testserver.Request) any {
		fullName := req.Vars["full_name"]
		state := runner.stateOf(req.Workspace)
		var count struct {
			Versions int `json:"versions"`
		}
		answer := forward(service, "registry", state, "COUNT", req.URL.Path, nil, nil)
		if answer.StatusCode == http.StatusOK {
			_ = json.Unmarshal(answer.Body.(json.RawMessage), &count)
		}
		if count.Versions > 0 {
			return testserver.Response{
				StatusCode: http.StatusBadRequest,
				Body: map[string]string{
					"error_code": "INVALID_STATE",
					"message": fmt.Sprintf("Function '%s' is not empty. The function has %d model versions(s)",
						fullName, count.Versions),
				},
			}
		}
		forward(service, "registry", state, "DELETE", req.URL.Path, nil, nil)
		return testserver.MapDelete(req.Workspace, req.Workspace.RegisteredModels, fullName)
	})
}

// forward hands a route to the service worker and returns its answer.
func forward(service *worker, op, state, method, path string, query url.Values, body []byte) testserver.Response {
	request := map[string]any{"op": op, "state": state, "method": method, "path": path, "query": query}
	if len(body) > 0 {
		var decoded any
		if err := json.Unmarshal(body, &decoded); err == nil {
			request["body"] = decoded
		}
	}
	var answer routeAnswer
	if err := service.call(request, &answer); err != nil {
		return testserver.Response{StatusCode: http.StatusInternalServerError, Body: map[string]string{
			"error_code": "INTERNAL_ERROR", "message": err.Error(),
		}}
	}
	return testserver.Response{StatusCode: answer.Status, Body: answer.Body}
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

func notFound(format string, args ...any) testserver.Response {
	return testserver.Response{
		StatusCode: http.StatusNotFound,
		Body: map[string]string{
			"error_code": "RESOURCE_DOES_NOT_EXIST",
			"message":    fmt.Sprintf(format, args...) + " does not exist",
		},
	}
}

// updatePermissions merges the request's entries into the object's direct permissions and
// stores the result through the default PUT handler.
func updatePermissions(req testserver.Request) any {
	var update iam.UpdateObjectPermissions
	if err := json.Unmarshal(req.Body, &update); err != nil {
		return badRequest("INVALID_PARAMETER_VALUE", "Failed to parse permissions update: %s", err)
	}
	current := iam.ObjectPermissions{}
	get := req
	get.Method = "GET"
	if response, ok := req.Workspace.GetPermissions(get).(testserver.Response); ok {
		if permissions, ok := response.Body.(iam.ObjectPermissions); ok {
			current = permissions
		}
	}
	principal := func(user, group, sp string) string { return user + "|" + group + "|" + sp }
	merged := map[string]iam.AccessControlRequest{}
	var order []string
	for _, entry := range current.AccessControlList {
		for _, permission := range entry.AllPermissions {
			if permission.Inherited {
				continue
			}
			key := principal(entry.UserName, entry.GroupName, entry.ServicePrincipalName)
			if _, seen := merged[key]; !seen {
				order = append(order, key)
			}
			merged[key] = iam.AccessControlRequest{
				UserName: entry.UserName, GroupName: entry.GroupName, ServicePrincipalName: entry.ServicePrincipalName,
				PermissionLevel: permission.PermissionLevel,
			}
		}
	}
	for _, entry := range update.AccessControlList {
		key := principal(entry.UserName, entry.GroupName, entry.ServicePrincipalName)
		if _, seen := merged[key]; !seen {
			order = append(order, key)
		}
		merged[key] = entry
	}
	update.AccessControlList = nil
	for _, key := range order {
		update.AccessControlList = append(update.AccessControlList, merged[key])
	}
	body, err := json.Marshal(update)
	if err != nil {
		return badRequest("INVALID_PARAMETER_VALUE", "%s", err)
	}
	put := req
	put.Body = body
	return req.Workspace.SetPermissions(put)
}
