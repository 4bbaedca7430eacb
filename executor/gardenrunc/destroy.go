package gardenrunc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

func (b *Backend) Destroy(ctx context.Context, handle string) error {
	b.mu.Lock()
	c, ok := b.containers[handle]
	b.mu.Unlock()
	if !ok {
		return garden.ContainerNotFoundError{Handle: handle}
	}
	if err := b.teardownContainer(ctx, c); err != nil {
		return fmt.Errorf("destroy %s: %w", handle, err)
	}
	b.mu.Lock()
	delete(b.containers, handle)
	b.mu.Unlock()
	b.release(c)
	return nil
}

// teardownContainer removes everything a (possibly half-built) container
// holds on the host, in reverse order of creation. It is safe to repeat.
func (b *Backend) teardownContainer(ctx context.Context, c *container) error {
	handle := c.st.Handle
	if err := b.killInit(ctx, c.st.InitPID, c.st.InitStart); err != nil {
		return err
	}
	// With init dead, what `runc delete` would do is removing the cgroups
	// and runc's state directory (gavel sets no hooks): done here, it
	// saves a runc start per destroy. runc itself is the fallback.
	if c.st.InitPID <= 0 || c.st.Cgroups.remove() != nil || os.RemoveAll(filepath.Join(b.cfg.RuncRoot, handle)) != nil {
		if err := b.runc.delete(ctx, handle); err != nil {
			return err
		}
	}
	c.waitProcesses(10 * time.Second)
	var errs []error
	c.mu.Lock()
	chains := c.st.Chains
	c.mu.Unlock()
	if err := b.net.detach(c.ip(), c.st.IPOffset, chains); err != nil {
		errs = append(errs, err)
	}
	if err := c.st.Overlay.unmount(); err != nil {
		errs = append(errs, err)
	}
	if err := c.st.Cgroups.remove(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Never remove through a live mount: that would reach the image.
	if mounted(c.st.Overlay.Root) || mounted(c.st.Overlay.Layer) {
		return fmt.Errorf("rootfs of %s still mounted", handle)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	return nil
}

// killInit kills the container's init, which takes every process of its
// pid namespace with it, and waits for it to be gone. Doing this before
// `runc delete` spares runc's kill-and-poll loop, which sleeps 100 ms at a
// time. A restored container's init is not our child: then its death is
// polled. The recorded start time guards against a recycled pid (after a
// reboot the depot may name pids that are now someone else's).
func (b *Backend) killInit(ctx context.Context, pid int, startTime string) error {
	if pid <= 0 || startTime == "" || procStartTime(pid) != startTime {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill init %d: %w", pid, err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err == nil || !errors.Is(err, syscall.ECHILD) {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return nil
		}
		// "pid (comm) S ...": a zombie (or dead) init is gone enough.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("init %d survived SIGKILL", pid)
}

// mounted reports whether path is a mount point.
func mounted(path string) bool {
	if path == "" {
		return false
	}
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// restore adopts the depot's containers whose init still runs and removes
// the rest, then sweeps host resources no container owns.
func (b *Backend) restore(ctx context.Context) error {
	entries, err := os.ReadDir(b.cfg.Depot)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(b.cfg.Depot, e.Name())
		c := &container{b: b, dir: dir, procs: map[string]*process{}}
		data, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err == nil {
			err = json.Unmarshal(data, &c.st)
		}
		if err != nil {
			b.logger.Warn("unreadable container state, removing", "dir", dir, "error", err)
			_ = b.runc.delete(ctx, e.Name())
			c.st.Handle = e.Name()
			c.st.Overlay = overlay{Root: filepath.Join(dir, "rootfs"), Layer: filepath.Join(dir, "layer"), Tmpfs: mounted(filepath.Join(dir, "layer"))}
			if err := b.teardownContainer(ctx, c); err != nil {
				b.logger.Error("remove broken container", "dir", dir, "error", err)
			}
			continue
		}
		st, serr := b.runc.state(ctx, c.st.Handle)
		if b.cfg.DestroyOnStart {
			serr = errors.New("destroy on start")
		}
		if serr != nil || st.Status != "running" || st.Pid != c.st.InitPID || c.st.Properties[garden.PropertyState] != garden.StateCreated {
			b.logger.Info("removing container that did not survive", "handle", c.st.Handle, "runc_status", st.Status)
			if err := b.teardownContainer(ctx, c); err != nil {
				b.logger.Error("remove dead container", "handle", c.st.Handle, "error", err)
			}
			continue
		}
		b.mu.Lock()
		if _, err := b.net.pool.claim(c.ip()); err != nil {
			b.logger.Error("restored container address", "handle", c.st.Handle, "error", err)
		}
		for _, m := range c.st.MappedPorts {
			_ = b.ports.claim(int(m.HostPort))
		}
		b.containers[c.st.Handle] = c
		b.mu.Unlock()
		c.restoreProcesses(b.logger)
		b.logger.Info("restored container", "handle", c.st.Handle)
	}
	return b.sweep(ctx)
}

// sweep removes runc containers, veths and per-container chains that no
// known container owns (left by a crash mid-create or mid-destroy).
func (b *Backend) sweep(ctx context.Context) error {
	b.mu.Lock()
	owned := map[string]bool{}
	vethOwned := map[string]bool{}
	for h, c := range b.containers {
		owned[h] = true
		vethOwned[b.net.vethName(c.st.IPOffset)] = true
		vethOwned[b.net.outChain(c.st.IPOffset)] = true
		vethOwned[b.net.natChain(c.st.IPOffset)] = true
	}
	b.mu.Unlock()
	ids, err := b.runc.list(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !owned[id] {
			b.logger.Info("removing orphaned runc container", "id", id)
			_ = b.runc.delete(ctx, id)
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		name := l.Attrs().Name
		if _, ok := l.(*netlink.Veth); ok && strings.HasPrefix(name, b.cfg.Tag) && !vethOwned[name] {
			_ = netlink.LinkDel(l)
		}
	}
	for _, table := range []string{"filter", "nat"} {
		chains, err := b.net.ipt.ListChains(table)
		if err != nil {
			return err
		}
		for _, ch := range chains {
			rest, ok := strings.CutPrefix(ch, b.cfg.Tag+"-")
			if !ok || vethOwned[ch] || (!strings.HasPrefix(rest, "o") && !strings.HasPrefix(rest, "n")) {
				continue
			}
			if _, err := strconv.ParseUint(rest[1:], 16, 32); err != nil {
				continue
			}
			// Drop the jump to it first, whatever its address.
			rules, _ := b.net.ipt.List(table, b.net.chain(map[string]string{"filter": "forward", "nat": "prerouting"}[table]))
			for _, r := range rules {
				if strings.HasSuffix(r, " "+ch) {
					f := strings.Fields(r)
					_ = b.net.ipt.Delete(table, f[1], f[2:]...)
				}
			}
			_ = b.net.ipt.ClearAndDeleteChain(table, ch)
		}
	}
	return nil
}
