package checks

import (
	"fmt"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/steps"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Check is one health check with its liveness interval.
type Check struct {
	// Name says what is checked, e.g. "tcp:8080", for logs.
	Name     string
	Probe    Probe
	Interval time.Duration
}

// Target is where checks of one container are aimed.
type Target struct {
	// IP is the container's address, reachable from the host.
	IP string
	// Container runs exec checks.
	Container steps.Container
	// User runs exec checks ("" is root).
	User string
}

// Defaults fill the timings a check leaves unset.
type Defaults struct {
	// Interval between liveness probes.
	Interval time.Duration
	// Timeout of one probe.
	Timeout time.Duration
}

// FromDefinition builds the liveness checks (readiness=false) or the
// readiness checks (readiness=true) of a definition against target.
func FromDefinition(def *models.CheckDefinition, readiness bool, target Target, d Defaults) ([]Check, error) {
	list := def.GetChecks()
	if readiness {
		list = def.GetReadinessChecks()
	}
	out := make([]Check, 0, len(list))
	for i, c := range list {
		ch, err := fromCheck(c, target, d)
		if err != nil {
			return nil, fmt.Errorf("check %d: %w", i, err)
		}
		out = append(out, ch)
	}
	return out, nil
}

func fromCheck(c *models.Check, target Target, d Defaults) (Check, error) {
	switch {
	case c.GetTcpCheck() != nil:
		t := c.GetTcpCheck()
		return Check{
			Name:     fmt.Sprintf("tcp:%d", t.GetPort()),
			Probe:    TCP{Addr: hostPort(target.IP, t.GetPort()), Timeout: ms(t.GetConnectTimeoutMs(), d.Timeout)},
			Interval: ms(t.GetIntervalMs(), d.Interval),
		}, nil
	case c.GetHttpCheck() != nil:
		h := c.GetHttpCheck()
		path := h.GetPath()
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		return Check{
			Name:     fmt.Sprintf("http:%d%s", h.GetPort(), path),
			Probe:    HTTP{URL: "http://" + hostPort(target.IP, h.GetPort()) + path, Timeout: ms(h.GetRequestTimeoutMs(), d.Timeout)},
			Interval: ms(h.GetIntervalMs(), d.Interval),
		}, nil
	case c.GetExecCheck() != nil:
		e := c.GetExecCheck()
		return Check{
			Name: "exec:" + e.GetPath(),
			Probe: Exec{
				Container: target.Container,
				Spec:      garden.ProcessSpec{Path: e.GetPath(), Args: e.GetArgs(), User: target.User},
				Timeout:   ms(e.GetTimeoutMs(), d.Timeout),
			},
			Interval: ms(e.GetIntervalMs(), d.Interval),
		}, nil
	}
	return Check{}, fmt.Errorf("no kind set")
}

func ms(v uint64, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return time.Duration(v) * time.Millisecond
}
