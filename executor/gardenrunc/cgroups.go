package gardenrunc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// cgroupPaths maps a cgroup v1 controller to a container's directory for
// it. runc places a relative cgroupsPath under its own cgroup, which is the
// server's: these are computed the same way and recorded with the
// container, so a server restarted elsewhere still finds them.
type cgroupPaths map[string]string

// ownCgroups returns, per hierarchy (v1 controllers, "name=systemd" and
// the like, "unified" for the v2 hierarchy), the mount point joined with
// the server's own cgroup.
func ownCgroups() (map[string]string, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			parts[1] = "unified"
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if m, ok := mounts[ctl]; ok {
				own[ctl] = filepath.Join(m, parts[2])
			}
		}
	}
	return own, nil
}

// cgroupMounts maps v1 controllers to their mount points.
func cgroupMounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 {
			continue
		}
		switch fields[sep+1] {
		case "cgroup":
			for _, opt := range strings.Split(fields[sep+3], ",") {
				out[opt] = fields[4]
			}
		case "cgroup2":
			out["unified"] = fields[4]
		}
	}
	return out, sc.Err()
}

// containerCgroups is where runc puts the cgroups of relative path rel.
func containerCgroups(own map[string]string, rel string) cgroupPaths {
	p := cgroupPaths{}
	for ctl, base := range own {
		p[ctl] = filepath.Join(base, rel)
	}
	return p
}

func readUint(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// parseKeyValues reads "key value" lines.
func parseKeyValues(data []byte) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err == nil {
			out[string(k)] = n
		}
	}
	return out
}

// memoryStat maps memory.stat onto Garden's stat, with the usage the
// kernel weighs against the limit.
func memoryStat(kv map[string]uint64) garden.ContainerMemoryStat {
	s := garden.ContainerMemoryStat{
		ActiveAnon: kv["active_anon"], ActiveFile: kv["active_file"], Cache: kv["cache"],
		HierarchicalMemoryLimit: kv["hierarchical_memory_limit"], InactiveAnon: kv["inactive_anon"],
		InactiveFile: kv["inactive_file"], MappedFile: kv["mapped_file"], Pgfault: kv["pgfault"],
		Pgmajfault: kv["pgmajfault"], Pgpgin: kv["pgpgin"], Pgpgout: kv["pgpgout"], Rss: kv["rss"],
		TotalActiveAnon: kv["total_active_anon"], TotalActiveFile: kv["total_active_file"],
		TotalCache: kv["total_cache"], TotalInactiveAnon: kv["total_inactive_anon"],
		TotalInactiveFile: kv["total_inactive_file"], TotalMappedFile: kv["total_mapped_file"],
		TotalPgfault: kv["total_pgfault"], TotalPgmajfault: kv["total_pgmajfault"],
		TotalPgpgin: kv["total_pgpgin"], TotalPgpgout: kv["total_pgpgout"], TotalRss: kv["total_rss"],
		TotalUnevictable: kv["total_unevictable"], Unevictable: kv["unevictable"], Swap: kv["swap"],
		HierarchicalMemswLimit: kv["hierarchical_memsw_limit"], TotalSwap: kv["total_swap"],
	}
	usage := int64(s.TotalRss + s.TotalCache + s.TotalSwap - min(s.TotalInactiveFile, s.TotalRss+s.TotalCache+s.TotalSwap))
	if usage > 0 {
		s.TotalUsageTowardLimit = uint64(usage)
	}
	return s
}

// userHZ is the unit of cpuacct.stat.
const userHZ = 100

// v2 reports whether the container's cgroups are on the unified
// hierarchy only (a pure cgroup v2 host); on a hybrid host runc uses v1.
func (p cgroupPaths) v2() bool {
	_, v1 := p["memory"]
	_, unified := p["unified"]
	return !v1 && unified
}

// dir is the directory holding controller ctl's files.
func (p cgroupPaths) dir(ctl string) string {
	if p.v2() {
		return p["unified"]
	}
	return p[ctl]
}

// stats reads the container's cgroup metrics.
func (p cgroupPaths) stats() (garden.ContainerMemoryStat, garden.ContainerCPUStat, garden.ContainerPidStat, error) {
	var (
		mem garden.ContainerMemoryStat
		cpu garden.ContainerCPUStat
		pid garden.ContainerPidStat
	)
	data, err := os.ReadFile(filepath.Join(p.dir("memory"), "memory.stat"))
	if err != nil {
		return mem, cpu, pid, fmt.Errorf("memory stats: %w", err)
	}
	if p.v2() {
		mem = memoryStatV2(parseKeyValues(data))
		if data, err = os.ReadFile(filepath.Join(p.dir("cpu"), "cpu.stat")); err != nil {
			return mem, cpu, pid, fmt.Errorf("cpu stats: %w", err)
		}
		kv := parseKeyValues(data)
		cpu = garden.ContainerCPUStat{Usage: kv["usage_usec"] * 1000, User: kv["user_usec"] * 1000, System: kv["system_usec"] * 1000}
	} else {
		mem = memoryStat(parseKeyValues(data))
		if cpu.Usage, err = readUint(filepath.Join(p.dir("cpuacct"), "cpuacct.usage")); err != nil {
			return mem, cpu, pid, fmt.Errorf("cpu stats: %w", err)
		}
		if data, err = os.ReadFile(filepath.Join(p.dir("cpuacct"), "cpuacct.stat")); err == nil {
			kv := parseKeyValues(data)
			cpu.User = kv["user"] * (1e9 / userHZ)
			cpu.System = kv["system"] * (1e9 / userHZ)
		}
	}
	if pid.Current, err = readUint(filepath.Join(p.dir("pids"), "pids.current")); err != nil {
		return mem, cpu, pid, fmt.Errorf("pid stats: %w", err)
	}
	pid.Max, _ = readUint(filepath.Join(p.dir("pids"), "pids.max"))
	return mem, cpu, pid, nil
}

// memoryStatV2 maps a v2 memory.stat: the usage weighed against the limit
// is file + anon + swapcached - inactive_file.
func memoryStatV2(kv map[string]uint64) garden.ContainerMemoryStat {
	s := garden.ContainerMemoryStat{
		Anon: kv["anon"], File: kv["file"], SwapCached: kv["swapcached"],
		ActiveAnon: kv["active_anon"], ActiveFile: kv["active_file"], InactiveAnon: kv["inactive_anon"],
		InactiveFile: kv["inactive_file"], Unevictable: kv["unevictable"], MappedFile: kv["file_mapped"],
		Pgfault: kv["pgfault"], Pgmajfault: kv["pgmajfault"],
	}
	if total := s.File + s.Anon + s.SwapCached; total > s.InactiveFile {
		s.TotalUsageTowardLimit = total - s.InactiveFile
	}
	return s
}

// oomKills counts the container's OOM kills.
func (p cgroupPaths) oomKills() uint64 {
	file := "memory.oom_control"
	if p.v2() {
		file = "memory.events"
	}
	data, err := os.ReadFile(filepath.Join(p.dir("memory"), file))
	if err != nil {
		return 0
	}
	return parseKeyValues(data)["oom_kill"]
}

// pids lists the container's processes (host pids).
func (p cgroupPaths) pids() ([]int, error) {
	data, err := os.ReadFile(filepath.Join(p.dir("pids"), "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// exist lists the directories still present (leak checks, cleanup).
func (p cgroupPaths) exist() []string {
	var out []string
	for _, d := range p {
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// remove deletes the (empty) cgroup directories; missing ones are fine.
func (p cgroupPaths) remove() error {
	var errs []error
	for _, d := range p {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// swapAccounting reports whether swap can be capped: memsw files on v1,
// memory.swap.max on a pure v2 host.
func swapAccounting(own map[string]string) bool {
	if m, ok := own["memory"]; ok {
		_, err := os.Stat(filepath.Join(m, "memory.memsw.limit_in_bytes"))
		return err == nil
	}
	if u, ok := own["unified"]; ok {
		_, err := os.Stat(filepath.Join(u, "memory.swap.max"))
		return err == nil
	}
	return false
}
