package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databricks/cli/libs/testserver"
	"github.com/databricks/databricks-sdk-go/service/jobs"
)

// jobRunner runs the jobs of the fake workspace: the Jobs service's part (task order,
// run_if, dynamic value references, task values, condition and run-job tasks, run states)
// is here; every python_wheel_task is executed by the compute worker, which runs the
// wheel the CLI uploaded. Nothing here decides what a task's code does or leaves behind.
type jobRunner struct {
	compute   *worker
	stateRoot string
	url       string

	mu     sync.Mutex
	states map[*testserver.FakeWorkspace]string
	data   map[*testserver.FakeWorkspace]string // project whose development stand-in is the workspace's data
}

// useData makes project's stand_in.py the source of the tables the workspace's jobs read and
// it does not have: a real workspace holds its data (samples.nyctaxi.trips is in every Unity
// Catalog workspace); the fake's is the project's development stand-in. A route of this fake
// only (POST /fake/data {"project": <folder>}), for the tests' setup.
func (r *jobRunner) useData(req testserver.Request) any {
	var request struct {
		Project string `json:"project"`
	}
	if err := json.Unmarshal(req.Body, &request); err != nil || request.Project == "" {
		return badRequest("INVALID_PARAMETER_VALUE", "POST /fake/data takes {\"project\": <project folder>}")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.data[req.Workspace] = request.Project
	return map[string]string{}
}

func (r *jobRunner) dataOf(w *testserver.FakeWorkspace) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data[w]
}

// stateOf is the fake workspace's state folder: its local tables, MLflow registry and
// stand-in objects, written by the job code its runs execute.
func (r *jobRunner) stateOf(w *testserver.FakeWorkspace) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if dir, ok := r.states[w]; ok {
		return dir
	}
	dir := filepath.Join(r.stateRoot, fmt.Sprintf("workspace-%d", len(r.states)+1))
	r.states[w] = dir
	return dir
}

var lastRunID atomic.Int64

// nextRunID hands out increasing ids, apart from the fake's own (time-based ones are larger).
func nextRunID() int64 {
	return lastRunID.Add(1) + 1_000_000
}

func (r *jobRunner) runNow(req testserver.Request) any {
	var request jobs.RunNow
	if err := json.Unmarshal(req.Body, &request); err != nil {
		return testserver.Response{StatusCode: http.StatusBadRequest, Body: "request parsing error: " + err.Error()}
	}
	w := req.Workspace
	job, ok := jobByID(w, request.JobId)
	if !ok || job.Settings == nil {
		return notFound("job %d", request.JobId)
	}
	if request.IdempotencyToken != "" {
		unlock := w.LockUnlock()
		runID, seen := w.JobRunIdempotency[request.IdempotencyToken]
		unlock()
		if seen {
			return jobs.RunNowResponse{RunId: runID}
		}
	}
	unknown := []string{}
	for name := range request.JobParameters {
		if !slices.ContainsFunc(job.Settings.Parameters, func(p jobs.JobParameterDefinition) bool { return p.Name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 { // Jobs API: run-now refuses parameters the job does not define
		sort.Strings(unknown)
		return badRequest("INVALID_PARAMETER_VALUE", "Job %d does not have job parameter(s): %s", request.JobId, strings.Join(unknown, ", "))
	}
	runID := r.start(w, req.Token, job, request.JobParameters, func(run *jobs.Run) {
		if request.IdempotencyToken != "" {
			w.JobRunIdempotency[request.IdempotencyToken] = run.RunId
		}
	})
	return jobs.RunNowResponse{RunId: runID}
}

// start records a RUNNING run of job and executes it in the background; the CLI polls runs/get.
func (r *jobRunner) start(w *testserver.FakeWorkspace, token string, job jobs.Job, overrides map[string]string, also func(*jobs.Run)) int64 {
	run := r.newRun(job, overrides)
	unlock := w.LockUnlock()
	w.JobRuns[run.RunId] = run
	if also != nil {
		also(&run)
	}
	unlock()
	go r.execute(w, token, job, run.RunId)
	return run.RunId
}

func (r *jobRunner) newRun(job jobs.Job, overrides map[string]string) jobs.Run {
	runID := nextRunID()
	var parameters []jobs.JobParameter
	for _, p := range job.Settings.Parameters {
		value := p.Default
		if v, ok := overrides[p.Name]; ok {
			value = v
		}
		parameters = append(parameters, jobs.JobParameter{Name: p.Name, Default: p.Default, Value: value})
	}
	slices.SortFunc(parameters, func(a, b jobs.JobParameter) int { return cmp.Compare(a.Name, b.Name) })
	var tasks []jobs.RunTask
	for _, task := range job.Settings.Tasks {
		tasks = append(tasks, jobs.RunTask{
			RunId:   nextRunID(),
			TaskKey: task.TaskKey,
			State:   &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStatePending},
		})
	}
	return jobs.Run{
		RunId:         runID,
		JobId:         job.JobId,
		RunName:       cmp.Or(job.Settings.Name, "run"),
		RunType:       jobs.RunTypeJobRun,
		RunPageUrl:    fmt.Sprintf("%s/?o=900800700600#job/%d/run/%d", r.url, job.JobId, runID),
		StartTime:     time.Now().UnixMilli(),
		State:         &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateRunning},
		Tasks:         tasks,
		JobParameters: parameters,
	}
}

// runContext is what a run's dynamic value references resolve against.
type runContext struct {
	values     map[string]string            // job.run_id, job.parameters.<name>, ...
	taskValues map[string]map[string]string // task key -> values its code set
}

var dynamicReference = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}`)

// fill replaces the dynamic value references the Jobs service resolves at run time
// (docs: "What is a dynamic value reference?"). A task value that the upstream task did
// not set fails the task, as it does on Databricks.
func (c runContext) fill(value string) (string, error) {
	var missing error
	filled := dynamicReference.ReplaceAllStringFunc(value, func(reference string) string {
		name := dynamicReference.FindStringSubmatch(reference)[1]
		if v, ok := c.values[name]; ok {
			return v
		}
		parts := strings.Split(name, ".")
		if len(parts) == 4 && parts[0] == "tasks" && parts[2] == "values" {
			if v, ok := c.taskValues[parts[1]][parts[3]]; ok {
				return v
			}
			missing = fmt.Errorf("task value %q of task %q was not set: {{%s}} cannot be resolved", parts[3], parts[1], name)
		}
		return reference
	})
	return filled, missing
}

// execute runs the job's tasks in dependency order and records each task's and the run's state.
func (r *jobRunner) execute(w *testserver.FakeWorkspace, token string, job jobs.Job, runID int64) {
	unlock := w.LockUnlock()
	run := w.JobRuns[runID]
	unlock()
	context := runContext{
		values: map[string]string{
			"job.run_id":                  strconv.FormatInt(runID, 10),
			"job.id":                      strconv.FormatInt(job.JobId, 10),
			"job.name":                    job.Settings.Name,
			"job.start_time.iso_date":     time.UnixMilli(run.StartTime).UTC().Format("2006-01-02"),
			"job.start_time.iso_datetime": time.UnixMilli(run.StartTime).UTC().Format(time.RFC3339),
		},
		taskValues: map[string]map[string]string{},
	}
	for _, p := range run.JobParameters {
		context.values["job.parameters."+p.Name] = p.Value
	}
	results := map[string]*jobs.RunTask{}
	for _, task := range inDependencyOrder(job.Settings.Tasks) {
		taskRun := r.taskRun(w, runID, task.TaskKey)
		results[task.TaskKey] = &taskRun
		if skipped, message := skippedState(task, results); skipped != "" {
			taskRun.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: skipped, StateMessage: message}
			if skipped == jobs.RunResultStateExcluded {
				taskRun.State.LifeCycleState = jobs.RunLifeCycleStateSkipped
			}
			r.saveTask(w, runID, taskRun, nil)
			continue
		}
		taskRun.StartTime = time.Now().UnixMilli()
		taskRun.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateRunning}
		r.saveTask(w, runID, taskRun, nil)

		context.values["task.name"] = task.TaskKey
		context.values["task.run_id"] = strconv.FormatInt(taskRun.RunId, 10)
		output, outcome, err := r.runTask(w, token, job, task, context)
		taskRun.EndTime = time.Now().UnixMilli()
		taskRun.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: jobs.RunResultStateSuccess}
		if outcome != "" {
			condition := *task.ConditionTask
			taskRun.ConditionTask = &jobs.RunConditionTask{Left: condition.Left, Op: condition.Op, Right: condition.Right, Outcome: outcome}
		}
		if err != nil {
			taskRun.State.ResultState = jobs.RunResultStateFailed
			taskRun.State.StateMessage = taskFailureMessage
			if output.Error == "" {
				output.Error = err.Error()
			}
		}
		r.saveTask(w, runID, taskRun, &output)
	}
	r.finish(w, runID)
}

// taskFailureMessage is the state message of a failed task (the CLI's testserver measured it
// on serverless: libs/testserver/jobs.go, taskFailureMessage).
const taskFailureMessage = "Workload failed, see run output for details"

func (r *jobRunner) taskRun(w *testserver.FakeWorkspace, runID int64, key string) jobs.RunTask {
	defer w.LockUnlock()()
	for _, task := range w.JobRuns[runID].Tasks {
		if task.TaskKey == key {
			return task
		}
	}
	return jobs.RunTask{RunId: nextRunID(), TaskKey: key}
}

func (r *jobRunner) saveTask(w *testserver.FakeWorkspace, runID int64, taskRun jobs.RunTask, output *jobs.RunOutput) {
	defer w.LockUnlock()()
	run := w.JobRuns[runID]
	tasks := slices.Clone(run.Tasks)
	for i := range tasks {
		if tasks[i].TaskKey == taskRun.TaskKey {
			tasks[i] = taskRun
		}
	}
	run.Tasks = tasks
	w.JobRuns[runID] = run
	if output != nil {
		w.JobRunOutputs[taskRun.RunId] = *output
	}
}

// finish rolls the tasks' outcomes up into the run's state as the Jobs API does (and as the
// CLI's testserver models it, terminateRun): a failed task fails the run.
func (r *jobRunner) finish(w *testserver.FakeWorkspace, runID int64) {
	defer w.LockUnlock()()
	run := w.JobRuns[runID]
	run.EndTime = time.Now().UnixMilli()
	run.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: jobs.RunResultStateSuccess}
	for _, task := range run.Tasks {
		if task.State.ResultState == jobs.RunResultStateFailed {
			run.State.LifeCycleState = jobs.RunLifeCycleStateInternalError
			run.State.ResultState = jobs.RunResultStateFailed
			run.State.StateMessage = fmt.Sprintf("Task %s failed with message: %s.", task.TaskKey, taskFailureMessage)
			break
		}
	}
	w.JobRuns[runID] = run
}

// skippedState: the state a task ends in without running, from its depends_on outcomes and
// run_if (docs: "Configure task dependencies"); "" when it runs.
func skippedState(task jobs.Task, results map[string]*jobs.RunTask) (jobs.RunResultState, string) {
	if len(task.DependsOn) == 0 {
		return "", ""
	}
	var states []jobs.RunResultState
	for _, dependency := range task.DependsOn {
		upstream := results[dependency.TaskKey]
		state := upstream.State.ResultState
		if dependency.Outcome != "" && state == jobs.RunResultStateSuccess {
			if upstream.ConditionTask == nil || upstream.ConditionTask.Outcome != strings.ToLower(dependency.Outcome) {
				state = jobs.RunResultStateExcluded
			}
		}
		states = append(states, state)
	}
	failed := func(s jobs.RunResultState) bool {
		return s == jobs.RunResultStateFailed || s == jobs.RunResultStateUpstreamFailed
	}
	success := func(s jobs.RunResultState) bool { return s == jobs.RunResultStateSuccess }
	runs := false
	switch cmp.Or(task.RunIf, jobs.RunIfAllSuccess) {
	case jobs.RunIfAllSuccess:
		runs = !slices.ContainsFunc(states, func(s jobs.RunResultState) bool { return !success(s) })
	case jobs.RunIfAllDone:
		runs = true
	case jobs.RunIfNoneFailed:
		runs = !slices.ContainsFunc(states, failed)
	case jobs.RunIfAtLeastOneSuccess:
		runs = slices.ContainsFunc(states, success)
	case jobs.RunIfAllFailed:
		runs = !slices.ContainsFunc(states, func(s jobs.RunResultState) bool { return !failed(s) })
	case jobs.RunIfAtLeastOneFailed:
		runs = slices.ContainsFunc(states, failed)
	}
	if runs {
		return "", ""
	}
	if slices.ContainsFunc(states, failed) {
		return jobs.RunResultStateUpstreamFailed, "Upstream task(s) failed."
	}
	return jobs.RunResultStateExcluded, "Excluded by a condition or run_if of an upstream task."
}

// taskAnswer is the compute worker's answer for one python_wheel_task.
type taskAnswer struct {
	OK     bool              `json:"ok"`
	Error  string            `json:"error"`
	Trace  string            `json:"trace"`
	Logs   string            `json:"logs"`
	Values map[string]string `json:"values"`
	Status int               `json:"status"` // set when the worker itself failed
	Body   json.RawMessage   `json:"body"`
}

// runTask runs one task; its output goes to runs/get-output, the outcome of a condition task
// is "true" or "false".
func (r *jobRunner) runTask(w *testserver.FakeWorkspace, token string, job jobs.Job, task jobs.Task, context runContext) (jobs.RunOutput, string, error) {
	switch {
	case task.PythonWheelTask != nil:
		return r.wheelTask(w, token, job, task, context)
	case task.ConditionTask != nil:
		outcome, err := conditionOutcome(*task.ConditionTask, context)
		return jobs.RunOutput{}, outcome, err
	case task.RunJobTask != nil:
		return r.runJobTask(w, token, task, context)
	}
	return jobs.RunOutput{}, "", fmt.Errorf("the fake workspace runs python_wheel_task, condition_task and run_job_task; task %s is another kind", task.TaskKey)
}

func (r *jobRunner) wheelTask(w *testserver.FakeWorkspace, token string, job jobs.Job, task jobs.Task, context runContext) (jobs.RunOutput, string, error) {
	wheel := task.PythonWheelTask
	wheels, requirements, err := r.libraries(w, job, task)
	if err != nil {
		return jobs.RunOutput{}, "", err
	}
	var parameters []string
	names := slices.Sorted(maps.Keys(wheel.NamedParameters))
	for _, name := range names {
		value, err := context.fill(wheel.NamedParameters[name])
		if err != nil {
			return jobs.RunOutput{}, "", err
		}
		parameters = append(parameters, fmt.Sprintf("--%s=%s", name, value))
	}
	for _, value := range wheel.Parameters {
		filled, err := context.fill(value)
		if err != nil {
			return jobs.RunOutput{}, "", err
		}
		parameters = append(parameters, filled)
	}
	request := map[string]any{
		"op":           "task",
		"wheels":       wheels,
		"requirements": requirements,
		"package":      wheel.PackageName,
		"entry_point":  wheel.EntryPoint,
		"parameters":   parameters,
		"env": map[string]string{
			"MLOPS_LOCAL_DIR":             r.stateOf(w),
			"MLOPS_LOCAL_WORKSPACE_HOST":  r.url,
			"MLOPS_LOCAL_WORKSPACE_TOKEN": token,
			"MLOPS_LOCAL_PROJECT":         r.dataOf(w),
		},
	}
	var answer taskAnswer
	if err := r.compute.call(request, &answer); err != nil {
		return jobs.RunOutput{}, "", err
	}
	if answer.Status != 0 {
		return jobs.RunOutput{}, "", fmt.Errorf("job worker failed: %s", answer.Body)
	}
	output := jobs.RunOutput{Logs: answer.Logs}
	if !answer.OK {
		output.Error, output.ErrorTrace = answer.Error, answer.Trace
		return output, "", fmt.Errorf("%s", answer.Error)
	}
	if len(answer.Values) > 0 {
		context.taskValues[task.TaskKey] = answer.Values
	}
	return output, "", nil
}

// requirementsFile is a requirements file a task installs (`-r <path>` in its serverless
// environment, a `requirements` library on a cluster): its workspace path and its text.
type requirementsFile struct {
	Path string `json:"path"`
	Text string `json:"text"`
}

// exportLibrary reads a file the task installs from the workspace files the CLI uploaded; a
// path that holds nothing fails the task as a library installation does.
func exportLibrary(w *testserver.FakeWorkspace, path string) ([]byte, error) {
	data := w.WorkspaceFilesExportFile(path)
	if len(data) == 0 {
		data = w.WorkspaceFilesExportFile(strings.TrimPrefix(path, "/Workspace"))
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("Library installation failed: %s does not exist in the workspace", path)
	}
	return data, nil
}

// libraries saves the wheels a task installs (its libraries on a cluster, else its
// environment's dependencies on serverless) from the workspace files the CLI uploaded, and
// reads the requirements files it installs (`requirements` libraries, `-r` dependencies).
func (r *jobRunner) libraries(w *testserver.FakeWorkspace, job jobs.Job, task jobs.Task) ([]string, []requirementsFile, error) {
	var paths, requirementPaths []string
	for _, library := range task.Libraries {
		if library.Whl != "" {
			paths = append(paths, library.Whl)
		}
		if library.Requirements != "" {
			requirementPaths = append(requirementPaths, library.Requirements)
		}
	}
	if task.EnvironmentKey != "" {
		for _, environment := range job.Settings.Environments {
			if environment.EnvironmentKey == task.EnvironmentKey && environment.Spec != nil {
				for _, dependency := range environment.Spec.Dependencies {
					if strings.HasSuffix(dependency, ".whl") {
						paths = append(paths, dependency)
					} else if path, ok := strings.CutPrefix(dependency, "-r "); ok {
						requirementPaths = append(requirementPaths, strings.TrimSpace(path))
					}
				}
			}
		}
	}
	var requirements []requirementsFile
	for _, path := range requirementPaths {
		data, err := exportLibrary(w, path)
		if err != nil {
			return nil, nil, err
		}
		requirements = append(requirements, requirementsFile{Path: path, Text: string(data)})
	}
	var saved []string
	for _, path := range paths {
		data, err := exportLibrary(w, path)
		if err != nil {
			return nil, nil, err
		}
		digest := sha256.Sum256(data)
		file := filepath.Join(r.stateRoot, "wheels", hex.EncodeToString(digest[:8]), filepath.Base(path))
		if _, err := os.Stat(file); err != nil {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(file, data, 0o644); err != nil {
				return nil, nil, err
			}
		}
		saved = append(saved, file)
	}
	return saved, requirements, nil
}

// conditionOutcome evaluates a condition_task: EQUAL_TO and NOT_EQUAL compare strings, the
// other operators numbers (docs: "Add branching logic to a job with the If/else task").
func conditionOutcome(condition jobs.ConditionTask, context runContext) (string, error) {
	left, err := context.fill(condition.Left)
	if err != nil {
		return "", err
	}
	right, err := context.fill(condition.Right)
	if err != nil {
		return "", err
	}
	var result bool
	switch condition.Op {
	case jobs.ConditionTaskOpEqualTo:
		result = left == right
	case jobs.ConditionTaskOpNotEqual:
		result = left != right
	default:
		l, errL := strconv.ParseFloat(left, 64)
		rr, errR := strconv.ParseFloat(right, 64)
		if errL != nil || errR != nil {
			return "", fmt.Errorf("condition %s needs numbers, got %q and %q", condition.Op, left, right)
		}
		switch condition.Op {
		case jobs.ConditionTaskOpGreaterThan:
			result = l > rr
		case jobs.ConditionTaskOpGreaterThanOrEqual:
			result = l >= rr
		case jobs.ConditionTaskOpLessThan:
			result = l < rr
		case jobs.ConditionTaskOpLessThanOrEqual:
			result = l <= rr
		default:
			return "", fmt.Errorf("unknown condition op %q", condition.Op)
		}
	}
	return strconv.FormatBool(result), nil
}

// runJobTask triggers another job of the workspace and waits for it; the task fails with it.
func (r *jobRunner) runJobTask(w *testserver.FakeWorkspace, token string, task jobs.Task, context runContext) (jobs.RunOutput, string, error) {
	child, ok := jobByID(w, task.RunJobTask.JobId)
	if !ok || child.Settings == nil {
		return jobs.RunOutput{}, "", fmt.Errorf("job %d does not exist", task.RunJobTask.JobId)
	}
	parameters := map[string]string{}
	for name, value := range task.RunJobTask.JobParameters {
		filled, err := context.fill(value)
		if err != nil {
			return jobs.RunOutput{}, "", err
		}
		parameters[name] = filled
	}
	run := r.newRun(child, parameters)
	unlock := w.LockUnlock()
	w.JobRuns[run.RunId] = run
	unlock()
	r.execute(w, token, child, run.RunId)
	unlock = w.LockUnlock()
	done := w.JobRuns[run.RunId]
	unlock()
	if done.State.ResultState != jobs.RunResultStateSuccess {
		return jobs.RunOutput{}, "", fmt.Errorf("run %d of job %d: %s", run.RunId, child.JobId, done.State.StateMessage)
	}
	return jobs.RunOutput{}, "", nil
}

// getRun answers runs/get with the run as it stands (the default handler ends a run at the
// second poll, whatever its tasks are doing).
func getRun(req testserver.Request) any {
	runID, err := strconv.ParseInt(req.URL.Query().Get("run_id"), 10, 64)
	if err != nil {
		return badRequest("INVALID_PARAMETER_VALUE", "run_id %q is not a number", req.URL.Query().Get("run_id"))
	}
	defer req.Workspace.LockUnlock()()
	run, ok := req.Workspace.JobRuns[runID]
	if !ok {
		return notFound("run %d", runID)
	}
	return run
}

// inDependencyOrder orders tasks so that each comes after the tasks it depends on (the
// fake stores a job's tasks sorted by key). The Jobs API refuses a job whose tasks form a
// cycle or name a missing task (refusals.go), so every task is reached.
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
		if !progressed {
			break
		}
	}
	return ordered
}

func jobByID(w *testserver.FakeWorkspace, id int64) (jobs.Job, bool) {
	defer w.LockUnlock()()
	job, ok := w.Jobs[id]
	return job, ok
}
