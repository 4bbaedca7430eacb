package gardenrunc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// residue lists what a destroyed container left on the host: mounts under
// its depot directory, the directory itself, its veth, its cgroups, its
// runc state.
func residue(b *Backend, handle string, off uint32, cg cgroupPaths) []string {
	b.background.Wait() // a destroy finishes deleting the veth off its path
	var left []string
	dir := filepath.Join(b.cfg.Depot, handle)
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.Contains(sc.Text(), dir+"/") || strings.Contains(sc.Text(), dir+" ") {
				left = append(left, "mount: "+sc.Text())
			}
		}
		f.Close()
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "depot dir "+dir)
	}
	if _, err := netlink.LinkByName(b.net.vethName(off)); err == nil {
		left = append(left, "veth "+b.net.vethName(off))
	}
	for _, d := range cg.exist() {
		left = append(left, "cgroup "+d)
	}
	if _, err := os.Stat(filepath.Join(b.cfg.RuncRoot, handle)); err == nil {
		left = append(left, "runc state "+handle)
	}
	return left
}

// iptablesResidue lists rules and chains of the test tag other than the
// global ones the backend keeps while it runs.
func iptablesResidue(t testing.TB, b *Backend) []string {
	t.Helper()
	global := map[string]bool{}
	for _, c := range []string{"input", "forward", "default", "prerouting", "postrouting"} {
		global[b.net.chain(c)] = true
	}
	var left []string
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		if err != nil {
			t.Fatalf("iptables -S: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			for _, word := range f {
				if strings.HasPrefix(word, b.cfg.Tag+"-") && !global[word] {
					left = append(left, table+": "+line)
					break
				}
			}
			// Container addresses appear only in per-container rules.
			if strings.Contains(line, " -s 10.254.") && strings.Contains(line, "-g") {
				left = append(left, table+": "+line)
			}
		}
	}
	return left
}

type created struct {
	handle string
	off    uint32
	cg     cgroupPaths
}

func (s *server) internal(t testing.TB, handle string) created {
	t.Helper()
	s.backend.mu.Lock()
	defer s.backend.mu.Unlock()
	c, ok := s.backend.containers[handle]
	if !ok {
		t.Fatalf("backend has no %s", handle)
	}
	return created{handle, c.st.IPOffset, c.st.Cgroups}
}

// cycle creates a container, runs true in it, and destroys it; every
// tenth also maps a port and adds a NetOut rule, so iptables cleanup is
// exercised.
func cycle(t testing.TB, s *server, handle string, withNet bool) created {
	ctx := context.Background()
	spec := garden.ContainerSpec{Handle: handle}
	if withNet {
		spec.NetIn = []garden.NetIn{{ContainerPort: 8080}}
		spec.NetOut = []garden.NetOutRule{{Protocol: garden.ProtocolTCP, Ports: []garden.PortRange{garden.PortRangeFromPort(443)}}}
	}
	c, err := s.client.Create(ctx, spec)
	if err != nil {
		t.Errorf("create %s: %v", handle, err)
		return created{}
	}
	info := s.internal(t, handle)
	p, err := c.Run(ctx, garden.ProcessSpec{Path: "true"}, garden.ProcessIO{})
	if err != nil {
		t.Errorf("run in %s: %v", handle, err)
	} else if code, err := p.Wait(); err != nil || code != 0 {
		t.Errorf("true in %s = %d, %v", handle, code, err)
	}
	if err := s.client.Destroy(ctx, handle); err != nil {
		t.Errorf("destroy %s: %v", handle, err)
	}
	return info
}

func TestCyclesLeaveNothingBehind(t *testing.T) {
	requireHost(t)
	s := startServer(t, "unix")
	const cycles, workers = 200, 4
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done []created
	)
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				info := cycle(t, s, fmt.Sprintf("cycle-%d", i), i%10 == 0)
				mu.Lock()
				done = append(done, info)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < cycles; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, c := range done {
		if left := residue(s.backend, c.handle, c.off, c.cg); len(left) > 0 {
			t.Errorf("%s left: %v", c.handle, left)
		}
	}
	if left := iptablesResidue(t, s.backend); len(left) > 0 {
		t.Errorf("iptables residue: %v", left)
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); ok && strings.HasPrefix(l.Attrs().Name, testTag) {
			t.Errorf("veth left: %s", l.Attrs().Name)
		}
	}
	entries, _ := os.ReadDir(s.backend.cfg.Depot)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("depot entry left: %s", e.Name())
		}
	}
	s.backend.mu.Lock()
	used := len(s.backend.net.pool.used) + len(s.backend.ports.used)
	s.backend.mu.Unlock()
	if used != 0 {
		t.Errorf("%d addresses or ports still allocated", used)
	}
}

func TestConcurrentCreates(t *testing.T) {
	requireHost(t)
	s := startServer(t, "tcp")
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	infos := make([]created, n)
	ips := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := fmt.Sprintf("conc-%d", i)
			c, err := s.client.Create(ctx, garden.ContainerSpec{Handle: h})
			if err != nil {
				t.Errorf("create %s: %v", h, err)
				return
			}
			infos[i] = s.internal(t, h)
			info, err := c.Info(ctx)
			if err != nil {
				t.Errorf("info %s: %v", h, err)
			}
			ips[i] = info.ContainerIP
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ip := range ips {
		if ip != "" && seen[ip] {
			t.Errorf("address %s handed out twice", ip)
		}
		seen[ip] = true
	}
	list, err := s.client.Containers(ctx, nil)
	if err != nil || len(list) != n {
		t.Fatalf("listed %d containers, %v", len(list), err)
	}
	// The residue checks see a live container, so their silence after
	// destroy means something.
	if live := residue(s.backend, infos[0].handle, infos[0].off, infos[0].cg); len(live) < 4 {
		t.Fatalf("residue check blind to a live container: %v", live)
	}
	c0, _ := s.client.Lookup(ctx, infos[0].handle)
	if _, _, err := c0.NetIn(ctx, 0, 80); err != nil {
		t.Fatal(err)
	}
	if live := iptablesResidue(t, s.backend); len(live) == 0 {
		t.Fatal("iptables residue check blind to a live NetIn chain")
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.client.Destroy(ctx, fmt.Sprintf("conc-%d", i)); err != nil {
				t.Errorf("destroy: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, c := range infos {
		if c.handle == "" {
			continue
		}
		if left := residue(s.backend, c.handle, c.off, c.cg); len(left) > 0 {
			t.Errorf("%s left: %v", c.handle, left)
		}
	}
	if left := iptablesResidue(t, s.backend); len(left) > 0 {
		t.Errorf("iptables residue: %v", left)
	}
}
