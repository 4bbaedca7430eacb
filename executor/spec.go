package executor

import (
	"fmt"
	"net"
	"strings"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/steps"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// maxCPUShares is the CPU shares of a container of weight 100.
const maxCPUShares = 1024

// containerSpec is the Garden Create request for a container.
func (e *Executor) containerSpec(c Container) (garden.ContainerSpec, error) {
	props, err := containerProperties(c, e.cfg.Owner)
	if err != nil {
		return garden.ContainerSpec{}, err
	}
	rules, err := netOutRules(c.RunInfo.EgressRules)
	if err != nil {
		return garden.ContainerSpec{}, err
	}
	info := c.RunInfo
	spec := garden.ContainerSpec{
		Handle:     c.Guid,
		Image:      garden.ImageRef{URI: info.RootFSPath, Username: info.ImageUsername, Password: info.ImagePassword},
		Privileged: info.Privileged,
		Env:        steps.EnvList(info.Env),
		Properties: props,
		NetOut:     rules,
		Limits: garden.Limits{
			Memory: garden.MemoryLimits{LimitInBytes: uint64(c.Resource.MemoryMB) << 20},
			Disk:   garden.DiskLimits{ByteHard: uint64(c.Resource.DiskMB) << 20, Scope: garden.DiskLimitScopeExclusive},
			Pid:    garden.PidLimits{Max: uint64(c.Resource.MaxPids)},
		},
	}
	if info.CPUWeight > 0 {
		spec.Limits.CPU.LimitInShares = uint64(maxCPUShares * min(info.CPUWeight, 100) / 100)
	}
	for _, p := range info.Ports {
		spec.NetIn = append(spec.NetIn, garden.NetIn{ContainerPort: p})
	}
	return spec, nil
}

// netOutRules turns egress rules into Garden NetOut rules.
func netOutRules(rules []*models.SecurityGroupRule) ([]garden.NetOutRule, error) {
	out := make([]garden.NetOutRule, 0, len(rules))
	for i, r := range rules {
		g := garden.NetOutRule{Log: r.GetLog()}
		switch strings.ToLower(r.GetProtocol()) {
		case "all", "":
			g.Protocol = garden.ProtocolAll
		case "tcp":
			g.Protocol = garden.ProtocolTCP
		case "udp":
			g.Protocol = garden.ProtocolUDP
		case "icmp":
			g.Protocol = garden.ProtocolICMP
			if ic := r.GetIcmpInfo(); ic != nil {
				code := garden.ICMPCode(ic.GetCode())
				g.ICMPs = &garden.ICMPControl{Type: garden.ICMPType(ic.GetType()), Code: &code}
			}
		default:
			return nil, fmt.Errorf("egress rule %d: unknown protocol %q", i, r.GetProtocol())
		}
		for _, d := range r.GetDestinations() {
			ipr, err := ipRange(d)
			if err != nil {
				return nil, fmt.Errorf("egress rule %d: %w", i, err)
			}
			g.Networks = append(g.Networks, ipr)
		}
		for _, p := range r.GetPorts() {
			g.Ports = append(g.Ports, garden.PortRangeFromPort(uint16(p)))
		}
		if pr := r.GetPortRange(); pr != nil {
			g.Ports = append(g.Ports, garden.PortRange{Start: uint16(pr.GetStart()), End: uint16(pr.GetEnd())})
		}
		out = append(out, g)
	}
	return out, nil
}

// ipRange parses "10.0.0.0/8", "1.2.3.4" or "1.2.3.4-1.2.3.9".
func ipRange(s string) (garden.IPRange, error) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return garden.IPRangeFromIPNet(n), nil
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		start, end := net.ParseIP(strings.TrimSpace(a)), net.ParseIP(strings.TrimSpace(b))
		if start == nil || end == nil {
			return garden.IPRange{}, fmt.Errorf("invalid destination range %q", s)
		}
		return garden.IPRange{Start: start, End: end}, nil
	}
	if ip := net.ParseIP(s); ip != nil {
		return garden.IPRangeFromIP(ip), nil
	}
	return garden.IPRange{}, fmt.Errorf("invalid destination %q", s)
}
