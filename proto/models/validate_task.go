package models

// Validate checks a task definition before it is stored.
func (t *TaskDefinition) Validate() error {
	var v validator
	v.taskDefinition("", t)
	return v.err()
}

// Validate checks a task record: identity, definition and state. Failure and
// rejection reasons are not checked; the store truncates them.
func (t *Task) Validate() error {
	var v validator
	v.task("", t)
	return v.err()
}

// Validate checks a domain record.
func (d *Domain) Validate() error {
	var v validator
	v.domain("domain", d.GetDomain())
	v.nonNegative("ttl", d.GetTtl())
	v.nonNegative("expires_at", d.GetExpiresAt())
	return v.err()
}

// Validate checks a cell presence before it is announced.
func (c *CellPresence) Validate() error {
	var v validator
	v.cellPresence("", c)
	return v.err()
}

// Validate checks an auction request for one task.
func (r *TaskStartRequest) Validate() error {
	var v validator
	v.taskStartRequest("", r)
	return v.err()
}

func (v *validator) taskDefinition(path string, t *TaskDefinition) {
	v.rootfs(field(path, "rootfs"), t.GetRootfs())
	v.env(field(path, "env"), t.GetEnv())
	v.requiredAction(field(path, "action"), t.GetAction())
	v.nonNegative(field(path, "disk_mb"), int64(t.GetDiskMb()))
	v.nonNegative(field(path, "memory_mb"), int64(t.GetMemoryMb()))
	v.cpuWeight(field(path, "cpu_weight"), t.GetCpuWeight())
	if t.GetResultFile() != "" {
		v.absPath(field(path, "result_file"), t.GetResultFile())
	}
	if t.GetCompletionCallbackUrl() != "" {
		v.httpURL(field(path, "completion_callback_url"), t.GetCompletionCallbackUrl())
	}
	v.annotation(field(path, "annotation"), t.GetAnnotation())
	v.egressRules(field(path, "egress_rules"), t.GetEgressRules())
	v.cachedDependencies(field(path, "cached_dependencies"), t.GetCachedDependencies())
	v.volumeMounts(field(path, "volume_mounts"), t.GetVolumeMounts())
	v.placementTags(field(path, "placement_tags"), t.GetPlacementTags())
	v.nonNegative(field(path, "max_pids"), int64(t.GetMaxPids()))
	v.imageCredentials(path, t.GetImageUsername(), t.GetImagePassword())
	v.imageLayers(field(path, "image_layers"), t.GetImageLayers())
	v.logRateLimit(field(path, "log_rate_limit"), t.GetLogRateLimit())
	v.metricTags(field(path, "metric_tags"), t.GetMetricTags())
	v.files(field(path, "volume_mounted_files"), t.GetVolumeMountedFiles())
	v.recordSize(path, "task_definition", t)
}

func (v *validator) task(path string, t *Task) {
	v.guid(field(path, "task_guid"), t.GetTaskGuid())
	v.domain(field(path, "domain"), t.GetDomain())
	if t.GetTaskDefinition() == nil {
		v.add(field(path, "task_definition"), "must be set")
	} else {
		v.taskDefinition(field(path, "task_definition"), t.GetTaskDefinition())
	}
	switch t.GetState() {
	case Task_PENDING, Task_COMPLETED, Task_RESOLVING:
	case Task_RUNNING:
		// A running task is on a cell; CompleteTask checks the caller
		// against it.
		v.cellID(field(path, "cell_id"), t.GetCellId())
	default:
		v.add(field(path, "state"), "must be PENDING, RUNNING, COMPLETED or RESOLVING, got %d", int32(t.GetState()))
	}
}

func (v *validator) cellPresence(path string, c *CellPresence) {
	if c == nil && path != "" {
		v.add(path, "must be set")
		return
	}
	v.cellID(field(path, "cell_id"), c.GetCellId())
	v.notEmpty(field(path, "rep_address"), c.GetRepAddress())
	capacity := c.GetCapacity()
	v.nonNegative(field(path, "capacity.memory_mb"), int64(capacity.GetMemoryMb()))
	v.nonNegative(field(path, "capacity.disk_mb"), int64(capacity.GetDiskMb()))
	v.nonNegative(field(path, "capacity.containers"), int64(capacity.GetContainers()))
}
