package gardenrunc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// BenchmarkCreateRunDestroy times the Garden lifecycle through the HTTP
// API on a unix socket (create, run `true` with its exit status, destroy)
// and, interleaved in the same run, a raw `runc run` of the same bundle
// (same rootfs overlay, mounts, namespaces and seccomp, running `true` as
// its only process), so the overhead of gavel over runc is measured on the
// same machine in the same conditions. Reported: p50 and p90 of each, and
// their ratio; and the p50 of the same lifecycle done with bare runc
// commands (run -d, exec, delete), which is what a Garden server that runs
// processes through `runc exec` cannot go below.
func BenchmarkCreateRunDestroy(b *testing.B) {
	requireHost(b)
	s := startServer(b, "unix")
	ctx := context.Background()

	// The raw bundle: the config gavel would write, with `true` as pid 1.
	rawDir := filepath.Join(b.TempDir(), "raw")
	if err := os.MkdirAll(rawDir, 0o700); err != nil {
		b.Fatal(err)
	}
	ov, err := mountOverlay(rawDir, testRootfs, garden.DiskLimits{})
	if err != nil {
		b.Fatal(err)
	}
	defer ov.unmount()
	for _, f := range []string{"hosts", "resolv.conf"} {
		os.WriteFile(filepath.Join(rawDir, f), nil, 0o644)
	}
	spec := buildSpec(bundleParams{
		Handle: "raw", RootFS: ov.Root, InitPath: s.backend.initPath,
		HostsPath: filepath.Join(rawDir, "hosts"), ResolvPath: filepath.Join(rawDir, "resolv.conf"),
		CgroupsPath: s.backend.cgroupRel("bench-raw"),
	})
	spec.Process.Args = []string{"/bin/true"}
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(rawDir, "config.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	// The same lifecycle done with bare runc commands (run -d of the
	// garden-init bundle, exec true, SIGKILL, delete): the floor of a
	// server that runs processes through `runc exec`.
	lifeDir := filepath.Join(b.TempDir(), "life")
	os.MkdirAll(lifeDir, 0o700)
	lov, err := mountOverlay(lifeDir, testRootfs, garden.DiskLimits{})
	if err != nil {
		b.Fatal(err)
	}
	defer lov.unmount()
	for _, f := range []string{"hosts", "resolv.conf"} {
		os.WriteFile(filepath.Join(lifeDir, f), nil, 0o644)
	}
	lspec := buildSpec(bundleParams{
		Handle: "life", RootFS: lov.Root, InitPath: s.backend.initPath,
		HostsPath: filepath.Join(lifeDir, "hosts"), ResolvPath: filepath.Join(lifeDir, "resolv.conf"),
		CgroupsPath: s.backend.cgroupRel("bench-life"),
	})
	ldata, _ := json.Marshal(lspec)
	os.WriteFile(filepath.Join(lifeDir, "config.json"), ldata, 0o600)
	rawLifecycle := func(i int) {
		id := fmt.Sprintf("bench-life-%d", i)
		// run --detach leaves its stdio to the init: no pipes (runCLI.run).
		if err := s.backend.runc.run(ctx, id, lifeDir, filepath.Join(lifeDir, "pid")); err != nil {
			b.Fatal(err)
		}
		if out, err := s.backend.runc.command(ctx, "exec", id, "/bin/true").CombinedOutput(); err != nil {
			b.Fatalf("runc exec: %v: %s", err, out)
		}
		// Killed and reaped first, as gavel does: `delete --force` of a
		// running container sleeps in 100 ms steps.
		pid, err := readPid(filepath.Join(lifeDir, "pid"))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.backend.killInit(ctx, pid, procStartTime(pid)); err != nil {
			b.Fatal(err)
		}
		if out, err := s.backend.runc.command(ctx, "delete", id).CombinedOutput(); err != nil {
			b.Fatalf("runc delete: %v: %s", err, out)
		}
	}
	rawRun := func(i int) {
		cmd := s.backend.runc.command(ctx, "run", "--bundle", rawDir, fmt.Sprintf("bench-raw-%d", i))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("raw runc run: %v: %s", err, out)
		}
	}
	var creates, runs, destroys []time.Duration
	gavelCycle := func(i int) {
		h := fmt.Sprintf("bench-%d", i)
		t0 := time.Now()
		c, err := s.client.Create(ctx, garden.ContainerSpec{Handle: h})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		p, err := c.Run(ctx, garden.ProcessSpec{Path: "true"}, garden.ProcessIO{})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := p.Wait(); err != nil || code != 0 {
			b.Fatalf("true = %d, %v", code, err)
		}
		t2 := time.Now()
		if err := s.client.Destroy(ctx, h); err != nil {
			b.Fatal(err)
		}
		creates, runs, destroys = append(creates, t1.Sub(t0)), append(runs, t2.Sub(t1)), append(destroys, time.Since(t2))
	}
	// Warm both paths (page cache, iptables, first bridge port).
	rawRun(-1)
	gavelCycle(-1)

	var gavel, raw, life []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		gavelCycle(i)
		gavel = append(gavel, time.Since(start))
		b.StopTimer()
		start = time.Now()
		rawRun(i)
		raw = append(raw, time.Since(start))
		start = time.Now()
		rawLifecycle(i)
		life = append(life, time.Since(start))
		b.StartTimer()
	}
	b.StopTimer()
	g50, g90 := percentile(gavel, 50), percentile(gavel, 90)
	r50, r90 := percentile(raw, 50), percentile(raw, 90)
	b.ReportMetric(ms(g50), "p50-ms")
	b.ReportMetric(ms(g90), "p90-ms")
	b.ReportMetric(ms(r50), "raw-runc-p50-ms")
	b.ReportMetric(ms(r90), "raw-runc-p90-ms")
	b.ReportMetric(float64(g50)/float64(r50), "x-raw-p50")
	b.ReportMetric(ms(percentile(life, 50)), "raw-runc-lifecycle-p50-ms")
	b.ReportMetric(ms(percentile(creates, 50)), "create-p50-ms")
	b.ReportMetric(ms(percentile(runs, 50)), "run-p50-ms")
	b.ReportMetric(ms(percentile(destroys, 50)), "destroy-p50-ms")
}

// BenchmarkConcurrentCreate50 creates 50 containers at once through the
// API and destroys them, checking nothing is left.
func BenchmarkConcurrentCreate50(b *testing.B) {
	requireHost(b)
	s := startServer(b, "unix")
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		infos := make([]created, 50)
		for j := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := fmt.Sprintf("cc-%d-%d", i, j)
				if _, err := s.client.Create(ctx, garden.ContainerSpec{Handle: h}); err != nil {
					b.Errorf("create: %v", err)
					return
				}
				infos[j] = s.internal(b, h)
			}()
		}
		wg.Wait()
		for j := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if infos[j].handle == "" {
					return
				}
				if err := s.client.Destroy(ctx, infos[j].handle); err != nil {
					b.Errorf("destroy: %v", err)
				}
			}()
		}
		wg.Wait()
		for _, c := range infos {
			if c.handle == "" {
				continue
			}
			if left := residue(s.backend, c.handle, c.off, c.cg); len(left) > 0 {
				b.Errorf("%s left %v", c.handle, left)
			}
		}
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
