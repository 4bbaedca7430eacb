package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
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

	// The same workload from a file, end to end over gRPC; a flag wins
	// over the file.
	workload := filepath.Join(t.TempDir(), "workload.yaml")
	if err := os.WriteFile(workload, []byte("cells: 6\nzones: 2\ninstances: 900\nbatch: 300\ncell: {memory_mb: 32768, disk_mb: 65536, containers: 250}\nmix: [{instances: 3, memory_mb: 128, disk_mb: 256}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(gavelBin, "sim", "--grpc", "--workload", workload, "--zones", "3", "-o", "json").Output()
	if err != nil {
		t.Fatalf("gavel sim --grpc: %v", err)
	}
	var grpcRep struct {
		Mode             string         `json:"mode"`
		Cells            int            `json:"cells"`
		Placed           int            `json:"placed"`
		Rounds           int            `json:"rounds"`
		InstancesPerZone map[string]int `json:"instances_per_zone"`
	}
	if err := json.Unmarshal(out, &grpcRep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	if grpcRep.Mode != "grpc" || grpcRep.Cells != 6 || grpcRep.Placed != 900 || grpcRep.Rounds < 3 || len(grpcRep.InstancesPerZone) != 3 {
		t.Fatalf("grpc report %+v", grpcRep)
	}
	if bad, err := exec.Command(gavelBin, "sim", "--workload", workload+".missing").CombinedOutput(); err == nil || !strings.Contains(string(bad), "--workload") {
		t.Fatalf("missing workload accepted: %v %s", err, bad)
	}

	bad, err := exec.Command(gavelBin, "sim", "--zones", "0").CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "zones") {
		t.Fatalf("bad flags accepted: %v %s", err, bad)
	}
}
