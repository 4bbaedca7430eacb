package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func TestSimReportsJSON(t *testing.T) {
	out, err := exec.Command(gavelBin, "sim", "--cells", "6", "--zones", "3", "--instances", "600", "--batch", "100", "-o", "json").Output()
	if err != nil {
		t.Fatalf("gavel sim: %v", err)
	}
	var rep struct {
		Placed           int            `json:"placed"`
		Failed           int            `json:"failed"`
		Rounds           int            `json:"rounds"`
		InstancesPerZone map[string]int `json:"instances_per_zone"`
		PlacementsPerSec float64        `json:"placements_per_second"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	if rep.Placed != 600 || rep.Failed != 0 || rep.Rounds != 6 || len(rep.InstancesPerZone) != 3 || rep.PlacementsPerSec <= 0 {
		t.Fatalf("report %+v", rep)
	}
	bad, err := exec.Command(gavelBin, "sim", "--zones", "0").CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "zones") {
		t.Fatalf("bad flags accepted: %v %s", err, bad)
	}
}
