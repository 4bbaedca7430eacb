package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkDesire100Instances desires 100 instances of the busybox httpd
// LRP (HTTP health check) on the 2 cells of a real `gavel dev`, and reports
// each instance's time from the desire to RUNNING (the BBS's `since` of its
// RUNNING row), p50 and p99, and the time until all run.
func BenchmarkDesire100Instances(b *testing.B) {
	c := startDevCells(b, 2)
	spec, err := os.ReadFile("../../manifests/examples/busybox-httpd-lrp.json")
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	var all []time.Duration
	for i := range b.N {
		var d map[string]any
		if err := json.Unmarshal(spec, &d); err != nil {
			b.Fatal(err)
		}
		guid := fmt.Sprintf("bench-%d", i)
		d["process_guid"], d["instances"], d["memory_mb"], d["disk_mb"] = guid, 100, 32, 32
		body, _ := json.Marshal(d)
		start := time.Now()
		c.gavel("create-desired-lrp", string(body))
		var since []int64
		pollUntil(b, "100 RUNNING instances", 10*time.Minute, func() bool {
			since = runningSince(b, c, guid)
			return len(since) == 100
		})
		all = append(all, time.Since(start))
		for _, s := range since {
			lat = append(lat, time.Unix(0, s).Sub(start))
		}
		c.gavel("delete-desired-lrp", guid)
		pollUntil(b, "the instances to go", 5*time.Minute, func() bool { return len(c.actuals(guid)) == 0 })
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2].Seconds(), "p50_s/instance")
	b.ReportMetric(lat[len(lat)*99/100].Seconds(), "p99_s/instance")
	b.ReportMetric(slices.Max(all).Seconds(), "all_running_s")
}

// runningSince lists the RUNNING instances' since timestamps (ns).
func runningSince(b *testing.B, c *devCluster, guid string) []int64 {
	out, err := gavel(b, c.home, "actual-lrps", "-p", guid)
	if err != nil {
		return nil
	}
	var since []int64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var a struct {
			State string `json:"state"`
			Since string `json:"since"`
		}
		if json.Unmarshal([]byte(line), &a) != nil || a.State != "RUNNING" {
			continue
		}
		n, err := strconv.ParseInt(a.Since, 10, 64)
		if err == nil {
			since = append(since, n)
		}
	}
	return since
}
