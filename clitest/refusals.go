package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/databricks/cli/libs/testserver"
	"github.com/databricks/databricks-sdk-go/service/catalog"
	"github.com/databricks/databricks-sdk-go/service/jobs"
	"github.com/databricks/databricks-sdk-go/service/ml"
)

// The refusals of the real service that a template can run into and the CLI's fake does not
// make. Each gives the service's status and error code; docs/decisions.md ("The fake
// workspace") lists the source of each.

func badRequest(code, format string, args ...any) testserver.Response {
	return testserver.Response{
		StatusCode: http.StatusBadRequest,
		Body:       map[string]string{"error_code": code, "message": fmt.Sprintf(format, args...)},
	}
}

// principals are the identities of the workspace besides its users: the fake's own service
// principal and those seeded with -service-principals.
type principals struct {
	servicePrincipals []string
}

// workspaceLocalGroups are the groups every workspace has that are not account groups:
// Unity Catalog grants only to account-level principals (docs: "Unity Catalog privileges
// and securable objects"; "Manage groups": workspace-local groups cannot be granted
// Unity Catalog privileges).
var workspaceLocalGroups = []string{"users", "admins"}

// modelPrivileges are the privileges that apply to a registered model (docs: "Unity Catalog
// privileges and securable objects", registered models are FUNCTION securables in the
// permissions API; the CLI's schema enumerates the names).
var modelPrivileges = []catalog.Privilege{
	"ALL_PRIVILEGES", "APPLY_TAG", "EXECUTE", "MANAGE", "BROWSE",
}

// checkJob: the Jobs API refuses a job whose task depends on a task it does not have, and a
// run_as service principal the workspace does not know.
func (p principals) checkJob(body []byte, reset bool) *testserver.Response {
	var settings jobs.JobSettings
	if reset {
		var request jobs.ResetJob
		if err := json.Unmarshal(body, &request); err != nil {
			return nil // the default handler answers parse errors
		}
		settings = request.NewSettings
	} else if err := json.Unmarshal(body, &settings); err != nil {
		return nil
	}
	keys := map[string]bool{}
	for _, task := range settings.Tasks {
		keys[task.TaskKey] = true
	}
	for _, task := range settings.Tasks {
		for _, dependency := range task.DependsOn {
			if !keys[dependency.TaskKey] {
				r := badRequest("INVALID_PARAMETER_VALUE",
					"Invalid dependency graph, task '%s' depends on '%s' which is not found.", task.TaskKey, dependency.TaskKey)
				return &r
			}
		}
	}
	if settings.RunAs != nil && settings.RunAs.ServicePrincipalName != "" &&
		!slices.Contains(p.servicePrincipals, settings.RunAs.ServicePrincipalName) {
		r := badRequest("INVALID_PARAMETER_VALUE",
			"Service principal with application ID %s does not exist in this workspace: run_as needs a principal added to the workspace.",
			settings.RunAs.ServicePrincipalName)
		return &r
	}
	return nil
}

// checkGrants: Unity Catalog refuses a grant to a principal that is not an account-level user,
// group or service principal, and a privilege that does not apply to the securable.
func checkGrants(securableType string, body []byte) *testserver.Response {
	var request catalog.UpdatePermissions
	if err := json.Unmarshal(body, &request); err != nil {
		return nil
	}
	for _, change := range request.Changes {
		if slices.Contains(workspaceLocalGroups, change.Principal) {
			r := testserver.Response{StatusCode: http.StatusNotFound, Body: map[string]string{
				"error_code": "PRINCIPAL_DOES_NOT_EXIST",
				"message":    fmt.Sprintf("Could not find principal with name %s", change.Principal),
			}}
			return &r
		}
		if strings.EqualFold(securableType, "function") {
			for _, privilege := range change.Add {
				if !slices.Contains(modelPrivileges, privilege) {
					r := badRequest("INVALID_PARAMETER_VALUE",
						"Privilege %s is not applicable to this entity [%s:FUNCTION]. Registered models take %v.",
						privilege, request.FullName, modelPrivileges)
					return &r
				}
			}
		}
	}
	return nil
}

// checkModelName: Unity Catalog object names may not contain a period, a space, a forward
// slash or a control character (docs: "Names", Unity Catalog object naming rules).
func checkModelName(body []byte) *testserver.Response {
	var request catalog.CreateRegisteredModelRequest
	if err := json.Unmarshal(body, &request); err != nil {
		return nil
	}
	for _, part := range []struct{ what, name string }{
		{"catalog", request.CatalogName}, {"schema", request.SchemaName}, {"model", request.Name},
	} {
		if bad := strings.IndexFunc(part.name, func(r rune) bool {
			return r == '.' || r == ' ' || r == '/' || r < 0x20 || r == 0x7f
		}); bad >= 0 || part.name == "" {
			r := badRequest("INVALID_PARAMETER_VALUE",
				"Invalid %s name %q: names cannot be empty or contain periods, spaces, forward slashes or control characters.",
				part.what, part.name)
			return &r
		}
	}
	return nil
}

// checkSchemaExists: a registered model goes into an existing catalog and schema; the fake's
// catalogs and schemas are the ones created in it (the tests' setup creates each target's, as
// a workspace admin does before the first deploy). Error code SCHEMA_DOES_NOT_EXIST of the
// Databricks error codes (databricks-sdk-go, ErrorCodeSchemaDoesNotExist).
func checkSchemaExists(w *testserver.FakeWorkspace, body []byte) *testserver.Response {
	var request catalog.CreateRegisteredModelRequest
	if err := json.Unmarshal(body, &request); err != nil {
		return nil
	}
	schema := request.CatalogName + "." + request.SchemaName
	unlock := w.LockUnlock()
	_, exists := w.Schemas[schema]
	unlock()
	if exists {
		return nil
	}
	r := testserver.Response{StatusCode: http.StatusNotFound, Body: map[string]string{
		"error_code": "SCHEMA_DOES_NOT_EXIST",
		"message":    fmt.Sprintf("Schema '%s' does not exist.", schema),
	}}
	return &r
}

// checkExperimentParent: an experiment's parent folder must exist; the service does not create
// it (RESOURCE_DOES_NOT_EXIST "Parent directory ... does not exist.", quoted in
// databricks-demos/dbdemos issue 155).
func checkExperimentParent(w *testserver.FakeWorkspace, body []byte) *testserver.Response {
	var request ml.CreateExperiment
	if err := json.Unmarshal(body, &request); err != nil || !strings.HasPrefix(request.Name, "/") {
		return nil
	}
	parent := path.Dir(request.Name)
	if w.DirectoryExists(parent) || w.DirectoryExists(strings.TrimPrefix(parent, "/Workspace")) {
		return nil
	}
	r := testserver.Response{StatusCode: http.StatusNotFound, Body: map[string]string{
		"error_code": "RESOURCE_DOES_NOT_EXIST",
		"message":    fmt.Sprintf("Parent directory %s does not exist.", parent),
	}}
	return &r
}
