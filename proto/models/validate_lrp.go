package models

import "google.golang.org/protobuf/proto"

// Validate checks a DesiredLRP before it is stored. It returns
// ValidationErrors listing every bad field, or nil.
func (d *DesiredLRP) Validate() error {
	var v validator
	v.desiredLRP("", d)
	return v.err()
}

// Validate checks a scheduling info (as stored, or as read back).
func (s *DesiredLRPSchedulingInfo) Validate() error {
	var v validator
	v.schedulingInfo("", s)
	return v.err()
}

// Validate checks a run info (as stored, or as read back).
func (r *DesiredLRPRunInfo) Validate() error {
	var v validator
	v.runInfo("", r)
	return v.err()
}

// Validate checks the fields an update sets; unset fields are not looked at.
func (u *DesiredLRPUpdate) Validate() error {
	var v validator
	v.desiredLRPUpdate("", u)
	return v.err()
}

// Validate checks the identity of an ActualLRP slot.
func (k *ActualLRPKey) Validate() error {
	var v validator
	v.actualLRPKey("", k)
	return v.err()
}

// Validate checks the identity of one placement of an ActualLRP.
func (k *ActualLRPInstanceKey) Validate() error {
	var v validator
	v.instanceKey("", k)
	return v.err()
}

// Validate checks the network information of a running instance.
func (n *ActualLRPNetInfo) Validate() error {
	var v validator
	v.netInfo("", n)
	return v.err()
}

// Validate checks an ActualLRP row, including the invariants tying its
// state to its instance key, net info, placement error and presence.
func (a *ActualLRP) Validate() error {
	var v validator
	v.actualLRP("", a)
	return v.err()
}

// Validate checks an auction request for some indices of one LRP.
func (r *LRPStartRequest) Validate() error {
	var v validator
	v.lrpStartRequest("", r)
	return v.err()
}

func (v *validator) desiredLRP(path string, d *DesiredLRP) {
	v.guid(field(path, "process_guid"), d.GetProcessGuid())
	v.domain(field(path, "domain"), d.GetDomain())
	v.instances(field(path, "instances"), d.GetInstances())
	v.rootfs(field(path, "rootfs"), d.GetRootfs())
	v.nonNegative(field(path, "memory_mb"), int64(d.GetMemoryMb()))
	v.nonNegative(field(path, "disk_mb"), int64(d.GetDiskMb()))
	v.nonNegative(field(path, "max_pids"), int64(d.GetMaxPids()))
	v.cpuWeight(field(path, "cpu_weight"), d.GetCpuWeight())
	v.ports(field(path, "ports"), d.GetPorts())
	v.routes(field(path, "routes"), d.GetRoutes())
	v.optionalAction(field(path, "setup"), d.GetSetup())
	v.requiredAction(field(path, "action"), d.GetAction())
	v.optionalAction(field(path, "monitor"), d.GetMonitor())
	v.checkDefinition(field(path, "check_definition"), d.GetCheckDefinition())
	v.nonNegative(field(path, "start_timeout_ms"), d.GetStartTimeoutMs())
	v.env(field(path, "env"), d.GetEnv())
	v.placementTags(field(path, "placement_tags"), d.GetPlacementTags())
	v.metricTags(field(path, "metric_tags"), d.GetMetricTags())
	v.annotation(field(path, "annotation"), d.GetAnnotation())
	v.egressRules(field(path, "egress_rules"), d.GetEgressRules())
	v.cachedDependencies(field(path, "cached_dependencies"), d.GetCachedDependencies())
	v.imageLayers(field(path, "image_layers"), d.GetImageLayers())
	v.volumeMounts(field(path, "volume_mounts"), d.GetVolumeMounts())
	v.files(field(path, "volume_mounted_files"), d.GetVolumeMountedFiles())
	v.imageCredentials(path, d.GetImageUsername(), d.GetImagePassword())
	v.sidecars(field(path, "sidecars"), d.GetSidecars())
	v.logRateLimit(field(path, "log_rate_limit"), d.GetLogRateLimit())
	v.updateStrategy(field(path, "update_strategy"), d.GetUpdateStrategy())
	v.recordSize(path, "desired_lrp", d)
}

// recordSize refuses records over MaxRecordSize. The problem belongs to the
// record as a whole, so it is reported on the record's own path (or, at the
// top level, on its name).
func (v *validator) recordSize(path, name string, m proto.Message) {
	if path == "" {
		path = name
	}
	if n := proto.Size(m); n > MaxRecordSize {
		v.add(path, "must be at most %d bytes encoded, got %d", MaxRecordSize, n)
	}
}

func (v *validator) desiredLRPKey(path string, k *DesiredLRPKey) {
	if k == nil {
		v.add(path, "must be set")
		return
	}
	v.guid(field(path, "process_guid"), k.GetProcessGuid())
	v.domain(field(path, "domain"), k.GetDomain())
}

func (v *validator) schedulingInfo(path string, s *DesiredLRPSchedulingInfo) {
	v.desiredLRPKey(field(path, "desired_lrp_key"), s.GetDesiredLrpKey())
	v.annotation(field(path, "annotation"), s.GetAnnotation())
	v.instances(field(path, "instances"), s.GetInstances())
	res := s.GetDesiredLrpResource()
	v.nonNegative(field(path, "desired_lrp_resource.memory_mb"), int64(res.GetMemoryMb()))
	v.nonNegative(field(path, "desired_lrp_resource.disk_mb"), int64(res.GetDiskMb()))
	v.nonNegative(field(path, "desired_lrp_resource.max_pids"), int64(res.GetMaxPids()))
	v.rootfs(field(path, "rootfs"), s.GetRootfs())
	v.routes(field(path, "routes"), s.GetRoutes())
	for i, d := range s.GetVolumePlacement().GetDriverNames() {
		v.notEmpty(elem(field(path, "volume_placement.driver_names"), i), d)
	}
	v.placementTags(field(path, "placement_tags"), s.GetPlacementTags())
	v.metricTags(field(path, "metric_tags"), s.GetMetricTags())
	v.updateStrategy(field(path, "update_strategy"), s.GetUpdateStrategy())
}

func (v *validator) runInfo(path string, r *DesiredLRPRunInfo) {
	v.desiredLRPKey(field(path, "desired_lrp_key"), r.GetDesiredLrpKey())
	v.env(field(path, "env"), r.GetEnv())
	v.optionalAction(field(path, "setup"), r.GetSetup())
	v.requiredAction(field(path, "action"), r.GetAction())
	v.optionalAction(field(path, "monitor"), r.GetMonitor())
	v.nonNegative(field(path, "start_timeout_ms"), r.GetStartTimeoutMs())
	v.cpuWeight(field(path, "cpu_weight"), r.GetCpuWeight())
	v.ports(field(path, "ports"), r.GetPorts())
	v.egressRules(field(path, "egress_rules"), r.GetEgressRules())
	v.cachedDependencies(field(path, "cached_dependencies"), r.GetCachedDependencies())
	v.volumeMounts(field(path, "volume_mounts"), r.GetVolumeMounts())
	v.imageCredentials(path, r.GetImageUsername(), r.GetImagePassword())
	v.checkDefinition(field(path, "check_definition"), r.GetCheckDefinition())
	v.imageLayers(field(path, "image_layers"), r.GetImageLayers())
	v.sidecars(field(path, "sidecars"), r.GetSidecars())
	v.logRateLimit(field(path, "log_rate_limit"), r.GetLogRateLimit())
	v.files(field(path, "volume_mounted_files"), r.GetVolumeMountedFiles())
	v.recordSize(path, "run_info", r)
}

func (v *validator) desiredLRPUpdate(path string, u *DesiredLRPUpdate) {
	if u == nil {
		return // an empty update changes nothing
	}
	if u.Instances != nil {
		v.instances(field(path, "instances"), u.GetInstances())
	}
	if u.Annotation != nil {
		v.annotation(field(path, "annotation"), u.GetAnnotation())
	}
	v.routes(field(path, "routes"), u.GetRoutes())
	v.metricTags(field(path, "metric_tags"), u.GetMetricTags())
	// Credentials are replaced as a pair; changing one alone would leave a
	// username with someone else's password.
	switch {
	case u.ImageUsername != nil && u.ImagePassword == nil:
		v.add(field(path, "image_password"), "must be set together with image_username")
	case u.ImageUsername == nil && u.ImagePassword != nil:
		v.add(field(path, "image_username"), "must be set together with image_password")
	default:
		v.imageCredentials(path, u.GetImageUsername(), u.GetImagePassword())
	}
}

func (v *validator) actualLRPKey(path string, k *ActualLRPKey) {
	if k == nil {
		v.add(path, "must be set")
		return
	}
	v.guid(field(path, "process_guid"), k.GetProcessGuid())
	v.nonNegative(field(path, "index"), int64(k.GetIndex()))
	v.domain(field(path, "domain"), k.GetDomain())
}

func (v *validator) instanceKey(path string, k *ActualLRPInstanceKey) {
	if k == nil {
		v.add(path, "must be set")
		return
	}
	v.guid(field(path, "instance_guid"), k.GetInstanceGuid())
	v.cellID(field(path, "cell_id"), k.GetCellId())
}

func (v *validator) netInfo(path string, n *ActualLRPNetInfo) {
	if n == nil {
		v.add(path, "must be set")
		return
	}
	v.notEmpty(field(path, "address"), n.GetAddress())
	for i, p := range n.GetPorts() {
		if p == nil {
			v.add(elem(field(path, "ports"), i), "must be set")
			continue
		}
		v.port(field(elem(field(path, "ports"), i), "container_port"), p.GetContainerPort())
	}
}

func (v *validator) actualLRP(path string, a *ActualLRP) {
	v.actualLRPKey(field(path, "actual_lrp_key"), a.GetActualLrpKey())
	v.nonNegative(field(path, "crash_count"), int64(a.GetCrashCount()))

	keyPath := field(path, "actual_lrp_instance_key")
	netPath := field(path, "actual_lrp_net_info")
	noKey := func(state string) {
		if !a.GetActualLrpInstanceKey().Empty() {
			v.add(keyPath, "must be empty when %s", state)
		}
	}
	noNetInfo := func(state string) {
		if proto.Size(a.GetActualLrpNetInfo()) != 0 {
			v.add(netPath, "must be empty when %s", state)
		}
	}
	noPlacementError := func(state string) {
		if a.GetPlacementError() != "" {
			v.add(field(path, "placement_error"), "must be empty when %s", state)
		}
	}

	presence := a.GetPresence()
	switch presence {
	case ActualLRP_ORDINARY, ActualLRP_EVACUATING, ActualLRP_SUSPECT:
	default:
		v.add(field(path, "presence"), "must be ORDINARY, EVACUATING or SUSPECT, got %d", int32(presence))
		presence = ActualLRP_ORDINARY // reported once; check the rest as ordinary
	}

	state := a.GetState()
	switch state {
	case ActualLRP_UNCLAIMED:
		noKey("UNCLAIMED")
		noNetInfo("UNCLAIMED")
		if presence != ActualLRP_ORDINARY {
			v.add(field(path, "presence"), "must be ORDINARY when UNCLAIMED, got %s", presence)
		}
	case ActualLRP_CLAIMED:
		v.instanceKey(keyPath, a.GetActualLrpInstanceKey())
		noNetInfo("CLAIMED")
		noPlacementError("CLAIMED")
	case ActualLRP_RUNNING:
		v.instanceKey(keyPath, a.GetActualLrpInstanceKey())
		v.netInfo(netPath, a.GetActualLrpNetInfo())
		noPlacementError("RUNNING")
	case ActualLRP_CRASHED:
		noKey("CRASHED")
	default:
		v.add(field(path, "state"), "must be UNCLAIMED, CLAIMED, RUNNING or CRASHED, got %d", int32(state))
		return
	}
	// A suspect row keeps a container that may still be alive on a cell we
	// lost contact with; an evacuating row keeps one that is still serving.
	switch {
	case state == ActualLRP_UNCLAIMED:
		// Already reported above.
	case presence == ActualLRP_SUSPECT && state != ActualLRP_RUNNING && state != ActualLRP_CLAIMED:
		v.add(field(path, "presence"), "SUSPECT must be RUNNING or CLAIMED, got %s", state)
	case presence == ActualLRP_EVACUATING && state != ActualLRP_RUNNING:
		v.add(field(path, "presence"), "EVACUATING must be RUNNING, got %s", state)
	}
}

func (v *validator) placementConstraint(path string, c *PlacementConstraint) {
	if c == nil {
		v.add(path, "must be set")
		return
	}
	v.rootfs(field(path, "rootfs"), c.GetRootfs())
	v.placementTags(field(path, "placement_tags"), c.GetPlacementTags())
	for i, d := range c.GetVolumeDrivers() {
		v.notEmpty(elem(field(path, "volume_drivers"), i), d)
	}
}

func (v *validator) resource(path string, r *Resource) {
	v.nonNegative(field(path, "memory_mb"), int64(r.GetMemoryMb()))
	v.nonNegative(field(path, "disk_mb"), int64(r.GetDiskMb()))
	v.nonNegative(field(path, "max_pids"), int64(r.GetMaxPids()))
}
