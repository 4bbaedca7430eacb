package executor

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Garden properties the executor keeps on its containers. Together they
// hold everything the store knows of a created container, which is what
// restore reads back.
const (
	propOwner       = "executor.owner"
	propState       = "executor.state"
	propAllocatedAt = "executor.allocated-at"
	propResource    = "executor.resource"
	propTags        = "executor.tags"
	propRunInfo     = "executor.run-info"
	propResult      = "executor.result"
	propSetupDone   = "executor.setup-done"
)

// runInfoWire is RunInfo as stored in a property; proto messages travel as
// protojson. Image credentials are not kept: they are only needed to
// create the container.
type runInfoWire struct {
	RootFSPath      string            `json:"rootfs,omitempty"`
	Privileged      bool              `json:"privileged,omitempty"`
	CPUWeight       uint32            `json:"cpu_weight,omitempty"`
	Env             []json.RawMessage `json:"env,omitempty"`
	Ports           []uint32          `json:"ports,omitempty"`
	Setup           json.RawMessage   `json:"setup,omitempty"`
	Action          json.RawMessage   `json:"action,omitempty"`
	CheckDefinition json.RawMessage   `json:"check_definition,omitempty"`
	StartTimeoutMs  int64             `json:"start_timeout_ms,omitempty"`
	CheckUser       string            `json:"check_user,omitempty"`
	EgressRules     []json.RawMessage `json:"egress_rules,omitempty"`
	LogSource       string            `json:"log_source,omitempty"`
}

// containerProperties are the properties a container is created with.
func containerProperties(c Container, owner string) (map[string]string, error) {
	info, err := encodeRunInfo(c.RunInfo)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		propOwner:       owner,
		propState:       string(StateInitializing),
		propAllocatedAt: c.AllocatedAt.UTC().Format(time.RFC3339Nano),
		propResource:    encodeJSON(c.Resource),
		propTags:        encodeJSON(c.Tags),
		propRunInfo:     info,
	}, nil
}

// decodeContainer rebuilds a container from its properties.
func decodeContainer(guid string, props map[string]string) (Container, resumeState, error) {
	c := Container{Guid: guid, State: State(props[propState])}
	switch c.State {
	case StateInitializing, StateCreated, StateRunning, StateCompleted:
	default:
		return Container{}, resumeState{}, fmt.Errorf("unknown state %q", c.State)
	}
	var err error
	if c.AllocatedAt, err = time.Parse(time.RFC3339Nano, props[propAllocatedAt]); err != nil {
		return Container{}, resumeState{}, fmt.Errorf("%s: %w", propAllocatedAt, err)
	}
	if err := json.Unmarshal([]byte(props[propResource]), &c.Resource); err != nil {
		return Container{}, resumeState{}, fmt.Errorf("%s: %w", propResource, err)
	}
	if err := json.Unmarshal([]byte(props[propTags]), &c.Tags); err != nil {
		return Container{}, resumeState{}, fmt.Errorf("%s: %w", propTags, err)
	}
	if c.Tags == nil {
		c.Tags = Tags{}
	}
	if c.RunInfo, err = decodeRunInfo(props[propRunInfo]); err != nil {
		return Container{}, resumeState{}, fmt.Errorf("%s: %w", propRunInfo, err)
	}
	if r, ok := props[propResult]; ok {
		if err := json.Unmarshal([]byte(r), &c.RunResult); err != nil {
			return Container{}, resumeState{}, fmt.Errorf("%s: %w", propResult, err)
		}
	}
	return c, resumeState{resumed: true, setupDone: props[propSetupDone] == "true"}, nil
}

func encodeRunInfo(r RunInfo) (string, error) {
	w := runInfoWire{
		RootFSPath: r.RootFSPath, Privileged: r.Privileged, CPUWeight: r.CPUWeight, Ports: r.Ports,
		StartTimeoutMs: r.StartTimeout.Milliseconds(), CheckUser: r.CheckUser, LogSource: r.LogSource,
	}
	var err error
	enc := func(m proto.Message) json.RawMessage {
		if err != nil || m == nil || !m.ProtoReflect().IsValid() {
			return nil
		}
		var b []byte
		b, err = protojson.Marshal(m)
		return b
	}
	for _, e := range r.Env {
		w.Env = append(w.Env, enc(e))
	}
	for _, rule := range r.EgressRules {
		w.EgressRules = append(w.EgressRules, enc(rule))
	}
	w.Setup, w.Action, w.CheckDefinition = enc(r.Setup), enc(r.Action), enc(r.CheckDefinition)
	if err != nil {
		return "", fmt.Errorf("encode run info: %w", err)
	}
	return encodeJSON(w), nil
}

func decodeRunInfo(s string) (RunInfo, error) {
	var w runInfoWire
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		return RunInfo{}, err
	}
	r := RunInfo{
		RootFSPath: w.RootFSPath, Privileged: w.Privileged, CPUWeight: w.CPUWeight, Ports: w.Ports,
		StartTimeout: time.Duration(w.StartTimeoutMs) * time.Millisecond, CheckUser: w.CheckUser, LogSource: w.LogSource,
	}
	var err error
	dec := func(b json.RawMessage, m proto.Message) {
		if err == nil && len(b) > 0 {
			err = protojson.Unmarshal(b, m)
		}
	}
	for _, b := range w.Env {
		e := &models.EnvironmentVariable{}
		dec(b, e)
		r.Env = append(r.Env, e)
	}
	for _, b := range w.EgressRules {
		rule := &models.SecurityGroupRule{}
		dec(b, rule)
		r.EgressRules = append(r.EgressRules, rule)
	}
	if len(w.Setup) > 0 {
		r.Setup = &models.Action{}
		dec(w.Setup, r.Setup)
	}
	if len(w.Action) > 0 {
		r.Action = &models.Action{}
		dec(w.Action, r.Action)
	}
	if len(w.CheckDefinition) > 0 {
		r.CheckDefinition = &models.CheckDefinition{}
		dec(w.CheckDefinition, r.CheckDefinition)
	}
	return r, err
}

// encodeJSON marshals values that cannot fail to marshal (plain structs
// and maps of strings).
func encodeJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("executor: marshal %T: %v", v, err))
	}
	return string(b)
}
