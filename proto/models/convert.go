package models

import (
	"maps"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// MaxReasonLength bounds stored crash, failure, placement and rejection
// reasons; longer ones are truncated rather than refused.
const MaxReasonLength = 1024

// Truncate shortens s to at most n bytes without splitting a UTF-8
// encoded rune: a rune that would straddle the limit is dropped whole.
// Bytes that are not valid UTF-8 are treated one byte at a time.
func Truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	// Only a rune starting in the last UTFMax-1 bytes before the cut can
	// straddle it.
	for start := n - 1; start >= 0 && start > n-utf8.UTFMax; start-- {
		if !utf8.RuneStart(s[start]) {
			continue
		}
		if _, size := utf8.DecodeRuneInString(s[start:]); start+size > n {
			return s[:start]
		}
		break
	}
	return s[:n]
}

// SchedulingInfo returns the part of d that auctions, convergence and the
// route emitter read. It shares nothing with d.
func (d *DesiredLRP) SchedulingInfo() *DesiredLRPSchedulingInfo {
	if d == nil {
		return nil
	}
	return &DesiredLRPSchedulingInfo{
		DesiredLrpKey: &DesiredLRPKey{
			ProcessGuid: d.GetProcessGuid(),
			Domain:      d.GetDomain(),
			LogGuid:     d.GetLogGuid(),
		},
		Annotation: d.GetAnnotation(),
		Instances:  d.GetInstances(),
		DesiredLrpResource: &DesiredLRPResource{
			MemoryMb: d.GetMemoryMb(),
			DiskMb:   d.GetDiskMb(),
			MaxPids:  d.GetMaxPids(),
		},
		Rootfs:          d.GetRootfs(),
		Routes:          cloneMap(d.GetRoutes()),
		ModificationTag: clone(d.GetModificationTag()),
		VolumePlacement: &VolumePlacement{DriverNames: volumeDrivers(d.GetVolumeMounts())},
		PlacementTags:   slices.Clone(d.GetPlacementTags()),
		MetricTags:      cloneMap(d.GetMetricTags()),
		UpdateStrategy:  d.GetUpdateStrategy(),
	}
}

// RunInfo returns the part of d a cell needs to run an instance. It shares
// nothing with d.
func (d *DesiredLRP) RunInfo() *DesiredLRPRunInfo {
	if d == nil {
		return nil
	}
	return &DesiredLRPRunInfo{
		DesiredLrpKey: &DesiredLRPKey{
			ProcessGuid: d.GetProcessGuid(),
			Domain:      d.GetDomain(),
			LogGuid:     d.GetLogGuid(),
		},
		Env:                           cloneSlice(d.GetEnv()),
		Setup:                         clone(d.GetSetup()),
		Action:                        clone(d.GetAction()),
		Monitor:                       clone(d.GetMonitor()),
		StartTimeoutMs:                d.GetStartTimeoutMs(),
		Privileged:                    d.GetPrivileged(),
		CpuWeight:                     d.GetCpuWeight(),
		Ports:                         slices.Clone(d.GetPorts()),
		EgressRules:                   cloneSlice(d.GetEgressRules()),
		LogSource:                     d.GetLogSource(),
		MetricsGuid:                   d.GetMetricsGuid(),
		CreatedAt:                     d.GetCreatedAt(),
		CachedDependencies:            cloneSlice(d.GetCachedDependencies()),
		LegacyDownloadUser:            d.GetLegacyDownloadUser(),
		TrustedSystemCertificatesPath: d.GetTrustedSystemCertificatesPath(),
		VolumeMounts:                  cloneSlice(d.GetVolumeMounts()),
		Network:                       clone(d.GetNetwork()),
		CertificateProperties:         clone(d.GetCertificateProperties()),
		ImageUsername:                 d.GetImageUsername(),
		ImagePassword:                 d.GetImagePassword(),
		CheckDefinition:               clone(d.GetCheckDefinition()),
		ImageLayers:                   cloneSlice(d.GetImageLayers()),
		Sidecars:                      cloneSlice(d.GetSidecars()),
		LogRateLimit:                  clone(d.GetLogRateLimit()),
		VolumeMountedFiles:            cloneSlice(d.GetVolumeMountedFiles()),
	}
}

// NewDesiredLRP joins a scheduling info and a run info back into the full
// record; NewDesiredLRP(d.SchedulingInfo(), d.RunInfo()) equals d. The key
// is taken from s (from r when s has none). The result shares nothing with
// s or r.
func NewDesiredLRP(s *DesiredLRPSchedulingInfo, r *DesiredLRPRunInfo) *DesiredLRP {
	key := s.GetDesiredLrpKey()
	if key == nil {
		key = r.GetDesiredLrpKey()
	}
	res := s.GetDesiredLrpResource()
	return &DesiredLRP{
		ProcessGuid:                   key.GetProcessGuid(),
		Domain:                        key.GetDomain(),
		LogGuid:                       key.GetLogGuid(),
		Instances:                     s.GetInstances(),
		Rootfs:                        s.GetRootfs(),
		MemoryMb:                      res.GetMemoryMb(),
		DiskMb:                        res.GetDiskMb(),
		MaxPids:                       res.GetMaxPids(),
		CpuWeight:                     r.GetCpuWeight(),
		Privileged:                    r.GetPrivileged(),
		Ports:                         slices.Clone(r.GetPorts()),
		Routes:                        cloneMap(s.GetRoutes()),
		Setup:                         clone(r.GetSetup()),
		Action:                        clone(r.GetAction()),
		Monitor:                       clone(r.GetMonitor()),
		CheckDefinition:               clone(r.GetCheckDefinition()),
		StartTimeoutMs:                r.GetStartTimeoutMs(),
		Env:                           cloneSlice(r.GetEnv()),
		PlacementTags:                 slices.Clone(s.GetPlacementTags()),
		LogSource:                     r.GetLogSource(),
		MetricsGuid:                   r.GetMetricsGuid(),
		MetricTags:                    cloneMap(s.GetMetricTags()),
		Annotation:                    s.GetAnnotation(),
		EgressRules:                   cloneSlice(r.GetEgressRules()),
		CachedDependencies:            cloneSlice(r.GetCachedDependencies()),
		ImageLayers:                   cloneSlice(r.GetImageLayers()),
		VolumeMounts:                  cloneSlice(r.GetVolumeMounts()),
		VolumeMountedFiles:            cloneSlice(r.GetVolumeMountedFiles()),
		ImageUsername:                 r.GetImageUsername(),
		ImagePassword:                 r.GetImagePassword(),
		TrustedSystemCertificatesPath: r.GetTrustedSystemCertificatesPath(),
		CertificateProperties:         clone(r.GetCertificateProperties()),
		Network:                       clone(r.GetNetwork()),
		Sidecars:                      cloneSlice(r.GetSidecars()),
		LogRateLimit:                  clone(r.GetLogRateLimit()),
		LegacyDownloadUser:            r.GetLegacyDownloadUser(),
		ModificationTag:               clone(s.GetModificationTag()),
		UpdateStrategy:                s.GetUpdateStrategy(),
		CreatedAt:                     r.GetCreatedAt(),
	}
}

// LRPStartRequest builds the auction request for the given indices of s.
func (s *DesiredLRPSchedulingInfo) LRPStartRequest(indices ...int32) *LRPStartRequest {
	res := s.GetDesiredLrpResource()
	return &LRPStartRequest{
		ProcessGuid: s.GetDesiredLrpKey().GetProcessGuid(),
		Domain:      s.GetDesiredLrpKey().GetDomain(),
		Indices:     slices.Clone(indices),
		PlacementConstraint: &PlacementConstraint{
			Rootfs:        s.GetRootfs(),
			PlacementTags: slices.Clone(s.GetPlacementTags()),
			VolumeDrivers: slices.Clone(s.GetVolumePlacement().GetDriverNames()),
		},
		Resource: &Resource{
			MemoryMb: res.GetMemoryMb(),
			DiskMb:   res.GetDiskMb(),
			MaxPids:  res.GetMaxPids(),
		},
	}
}

// TaskStartRequest builds the auction request for t.
func (t *Task) TaskStartRequest() *TaskStartRequest {
	def := t.GetTaskDefinition()
	return &TaskStartRequest{
		TaskGuid: t.GetTaskGuid(),
		Domain:   t.GetDomain(),
		PlacementConstraint: &PlacementConstraint{
			Rootfs:        def.GetRootfs(),
			PlacementTags: slices.Clone(def.GetPlacementTags()),
			VolumeDrivers: volumeDrivers(def.GetVolumeMounts()),
		},
		Resource: &Resource{
			MemoryMb: def.GetMemoryMb(),
			DiskMb:   def.GetDiskMb(),
			MaxPids:  def.GetMaxPids(),
		},
	}
}

// Apply writes the fields set in u into s and r and reports which of the
// two actually changed, so the caller knows what to store and whether to
// bump the modification tag. Routes are replaced when set_routes is true or
// routes is non-empty; metric tags likewise. Apply does not touch the
// modification tag. A nil s or r is left alone.
func (u *DesiredLRPUpdate) Apply(s *DesiredLRPSchedulingInfo, r *DesiredLRPRunInfo) (schedChanged, runChanged bool) {
	if u == nil {
		return false, false
	}
	if s != nil {
		if u.Instances != nil && s.Instances != u.GetInstances() {
			s.Instances = u.GetInstances()
			schedChanged = true
		}
		if u.GetSetRoutes() || len(u.GetRoutes()) > 0 {
			if !maps.EqualFunc(s.GetRoutes(), u.GetRoutes(), equalMessages[*structpb.Value]) {
				s.Routes = cloneMap(u.GetRoutes())
				schedChanged = true
			}
		}
		if u.Annotation != nil && s.Annotation != u.GetAnnotation() {
			s.Annotation = u.GetAnnotation()
			schedChanged = true
		}
		if u.GetSetMetricTags() || len(u.GetMetricTags()) > 0 {
			if !maps.EqualFunc(s.GetMetricTags(), u.GetMetricTags(), equalMessages[*MetricTagValue]) {
				s.MetricTags = cloneMap(u.GetMetricTags())
				schedChanged = true
			}
		}
	}
	if r != nil {
		if u.ImageUsername != nil && r.ImageUsername != u.GetImageUsername() {
			r.ImageUsername = u.GetImageUsername()
			runChanged = true
		}
		if u.ImagePassword != nil && r.ImagePassword != u.GetImagePassword() {
			r.ImagePassword = u.GetImagePassword()
			runChanged = true
		}
	}
	return schedChanged, runChanged
}

// ProcessGuid returns the process guid from the key; "" when unset.
func (s *DesiredLRPSchedulingInfo) ProcessGuid() string {
	return s.GetDesiredLrpKey().GetProcessGuid()
}

// ProcessGuid returns the process guid from the key; "" when unset.
func (a *ActualLRP) ProcessGuid() string { return a.GetActualLrpKey().GetProcessGuid() }

// Index returns the instance index from the key; 0 when unset.
func (a *ActualLRP) Index() int32 { return a.GetActualLrpKey().GetIndex() }

// CellID returns the cell from the instance key; "" when unplaced.
func (a *ActualLRP) CellID() string { return a.GetActualLrpInstanceKey().GetCellId() }

// InstanceGuid returns the instance guid from the instance key; "" when
// unplaced.
func (a *ActualLRP) InstanceGuid() string { return a.GetActualLrpInstanceKey().GetInstanceGuid() }

// volumeDrivers lists the distinct drivers of mounts in first-seen order;
// the auction only places work on cells that have all of them.
func volumeDrivers(mounts []*VolumeMount) []string {
	var out []string
	for _, m := range mounts {
		if d := m.GetDriver(); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// clone deep-copies a message, keeping nil as nil.
func clone[M proto.Message](m M) M {
	return proto.Clone(m).(M)
}

func cloneSlice[M proto.Message](in []M) []M {
	if in == nil {
		return nil
	}
	out := make([]M, len(in))
	for i, m := range in {
		out[i] = clone(m)
	}
	return out
}

func cloneMap[M proto.Message](in map[string]M) map[string]M {
	if in == nil {
		return nil
	}
	out := make(map[string]M, len(in))
	for k, m := range in {
		out[k] = clone(m)
	}
	return out
}

func equalMessages[M proto.Message](a, b M) bool { return proto.Equal(a, b) }
