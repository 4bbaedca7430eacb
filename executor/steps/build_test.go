package steps

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gavel-scheduler/gavel/executor/logs"
	"github.com/gavel-scheduler/gavel/proto/models"
)

func run(path string, args ...string) *models.Action {
	return &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: path, Args: args}}}
}

func serial(as ...*models.Action) *models.Action {
	return &models.Action{Kind: &models.Action_Serial{Serial: &models.SerialAction{Actions: as}}}
}

// describe renders a step tree's shape.
func describe(s Step) string {
	switch v := s.(type) {
	case Serial:
		return "serial(" + list(v) + ")"
	case Parallel:
		return "parallel(" + list(v) + ")"
	case Codependent:
		return "codependent(" + list(v) + ")"
	case Try:
		return "try(" + describe(v.Step) + ")"
	case Timeout:
		return fmt.Sprintf("timeout[%s](%s)", v.After, describe(v.Step))
	case EmitProgress:
		return "emit(" + describe(v.Step) + ")"
	case Run:
		return "run[" + v.Spec.ID + "]"
	case Download:
		return "download[" + v.To + "]"
	case Upload:
		return "upload[" + v.From + "]"
	case WriteFiles:
		return "files"
	}
	return fmt.Sprintf("?%T", s)
}

func list(ss []Step) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = describe(s)
	}
	return strings.Join(parts, ",")
}

func TestBuildShapesAndProcessIDs(t *testing.T) {
	tree := serial(
		&models.Action{Kind: &models.Action_Download{Download: &models.DownloadAction{From: "http://127.0.0.1/x", To: "/app"}}},
		&models.Action{Kind: &models.Action_EmitProgress{EmitProgress: &models.EmitProgressAction{Action: run("a")}}},
		&models.Action{Kind: &models.Action_Parallel{Parallel: &models.ParallelAction{Actions: []*models.Action{run("b"), run("c")}}}},
		&models.Action{Kind: &models.Action_Codependent{Codependent: &models.CodependentAction{Actions: []*models.Action{run("d")}}}},
		&models.Action{Kind: &models.Action_Try{Try: &models.TryAction{Action: &models.Action{Kind: &models.Action_Timeout{Timeout: &models.TimeoutAction{Action: run("e"), TimeoutMs: 1500}}}}}},
		&models.Action{Kind: &models.Action_Upload{Upload: &models.UploadAction{From: "/out", To: "http://127.0.0.1/up"}}},
		&models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "f", VolumeMountedFiles: []*models.File{{Path: "db/creds", Content: "x"}}}}},
	)
	if err := tree.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := Build(Env{Container: newFakeContainer(), ProcessIDPrefix: "g1-action-"}, tree)
	if err != nil {
		t.Fatal(err)
	}
	want := "serial(download[/app],emit(run[g1-action-0.1.0]),parallel(run[g1-action-0.2.0],run[g1-action-0.2.1])," +
		"codependent(run[g1-action-0.3.0]),try(timeout[1.5s](run[g1-action-0.4.0.0])),upload[/out],serial(files,run[g1-action-0.6]))"
	if got := describe(st); got != want {
		t.Fatalf("tree = %s\nwant   %s", got, want)
	}
	if _, err := Build(Env{}, &models.Action{}); err == nil {
		t.Fatal("an action with no kind built")
	}
}

func TestBuildRunsAndInheritsLogSource(t *testing.T) {
	c := newFakeContainer()
	ring := logs.NewRing(100, 1<<20)
	tree := serial(
		&models.Action{Kind: &models.Action_Run{Run: &models.RunAction{
			Path: "echo", Args: []string{"one"}, User: "vcap", Dir: "/home/vcap",
			Env:            []*models.EnvironmentVariable{{Name: "PORT", Value: "8080"}},
			ResourceLimits: &models.ResourceLimits{Nofile: new(uint64(1024))},
		}}},
		&models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "echo", Args: []string{"two"}, LogSource: "HEALTH"}}},
		&models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "echo", Args: []string{"hidden"}, SuppressLogOutput: true}}},
		&models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "exit", Args: []string{"2"}}}},
	)
	st, err := Build(Env{Container: c, Logs: ring, LogSource: "APP", ProcessIDPrefix: "g-"}, tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Run(context.Background()); err == nil || err.Error() != "exit status 2" {
		t.Fatalf("err = %v, want exit status 2", err)
	}
	lines, _ := ring.Read(0, 0)
	var got []string
	for _, l := range lines {
		got = append(got, l.Source+":"+l.Text)
	}
	if strings.Join(got, " ") != "APP:one HEALTH:two" {
		t.Fatalf("log = %v", got)
	}
	spec := c.startedSpecs()[0]
	if spec.User != "vcap" || spec.Dir != "/home/vcap" || fmt.Sprint(spec.Env) != "[PORT=8080]" || *spec.Limits.Nofile != 1024 || spec.ID != "g-0.0" {
		t.Fatalf("spec = %+v", spec)
	}
}
