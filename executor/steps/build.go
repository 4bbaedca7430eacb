package steps

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gavel-scheduler/gavel/executor/download"
	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/logs"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Env is what Build needs to turn actions into steps for one container.
type Env struct {
	Container Container
	Fetcher   Fetcher
	// HTTP uploads; nil is http.DefaultClient.
	HTTP *http.Client
	// Logs receives process output and progress messages.
	Logs *logs.Ring
	// LogSource is the source of output from actions that name none.
	LogSource string
	// ProcessIDPrefix starts the ID of every process the tree runs; the
	// rest is the action's position in the tree, so the same tree always
	// gives the same IDs (which is what lets Reattach find them again).
	ProcessIDPrefix string
	// Reattach makes run steps attach to their process if Garden still
	// knows it (see Run.Reattach).
	Reattach         bool
	GracefulShutdown time.Duration
	Logger           *slog.Logger
}

// Build turns a validated action tree into a step tree.
func Build(env Env, a *models.Action) (Step, error) {
	return env.build(a, "0", env.LogSource)
}

// build converts a at tree position pos; source is the inherited log
// source.
func (env Env) build(a *models.Action, pos, source string) (Step, error) {
	switch k := a.GetKind().(type) {
	case *models.Action_Download:
		d := k.Download
		source = orDefault(d.GetLogSource(), source)
		return Download{
			Container: env.Container, Fetcher: env.Fetcher,
			Request: download.Request{
				URL: d.GetFrom(), CacheKey: d.GetCacheKey(),
				Checksum: download.Checksum{Algorithm: d.GetChecksumAlgorithm(), Value: d.GetChecksumValue()},
			},
			Artifact: d.GetArtifact(), To: d.GetTo(), User: d.GetUser(), Logs: env.Logs, Source: source,
		}, nil
	case *models.Action_Upload:
		u := k.Upload
		return Upload{
			Container: env.Container, Client: env.HTTP, From: u.GetFrom(), To: u.GetTo(), User: u.GetUser(),
			Artifact: u.GetArtifact(), Logs: env.Logs, Source: orDefault(u.GetLogSource(), source),
		}, nil
	case *models.Action_Run:
		return env.run(k.Run, pos, orDefault(k.Run.GetLogSource(), source)), nil
	case *models.Action_Timeout:
		t := k.Timeout
		inner, err := env.build(t.GetAction(), pos+".0", orDefault(t.GetLogSource(), source))
		if err != nil {
			return nil, err
		}
		return Timeout{Step: inner, After: time.Duration(t.GetTimeoutMs()) * time.Millisecond}, nil
	case *models.Action_EmitProgress:
		e := k.EmitProgress
		source = orDefault(e.GetLogSource(), source)
		inner, err := env.build(e.GetAction(), pos+".0", source)
		if err != nil {
			return nil, err
		}
		return EmitProgress{
			Step: inner, Logs: env.Logs, Source: source, StartMessage: e.GetStartMessage(),
			SuccessMessage: e.GetSuccessMessage(), FailurePrefix: e.GetFailureMessagePrefix(),
		}, nil
	case *models.Action_Try:
		source = orDefault(k.Try.GetLogSource(), source)
		inner, err := env.build(k.Try.GetAction(), pos+".0", source)
		if err != nil {
			return nil, err
		}
		return Try{Step: inner, Logs: env.Logs, Source: source}, nil
	case *models.Action_Serial:
		list, err := env.list(k.Serial.GetActions(), pos, orDefault(k.Serial.GetLogSource(), source))
		return Serial(list), err
	case *models.Action_Parallel:
		list, err := env.list(k.Parallel.GetActions(), pos, orDefault(k.Parallel.GetLogSource(), source))
		return Parallel(list), err
	case *models.Action_Codependent:
		list, err := env.list(k.Codependent.GetActions(), pos, orDefault(k.Codependent.GetLogSource(), source))
		return Codependent(list), err
	}
	return nil, fmt.Errorf("action at %s: no kind set", pos)
}

func (env Env) list(actions []*models.Action, pos, source string) ([]Step, error) {
	out := make([]Step, len(actions))
	for i, a := range actions {
		st, err := env.build(a, pos+"."+strconv.Itoa(i), source)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

func (env Env) run(r *models.RunAction, pos, source string) Step {
	spec := garden.ProcessSpec{
		ID:   env.ProcessIDPrefix + pos,
		Path: r.GetPath(), Args: r.GetArgs(), Dir: r.GetDir(), User: r.GetUser(),
		Env: EnvList(r.GetEnv()),
	}
	if rl := r.GetResourceLimits(); rl != nil {
		spec.Limits.Nofile = rl.Nofile
		spec.Limits.Nproc = rl.Nproc
	}
	step := Run{
		Container: env.Container, Spec: spec, Reattach: env.Reattach, Detachable: true,
		GracefulShutdown: env.GracefulShutdown, Logger: env.Logger,
	}
	if !r.GetSuppressLogOutput() && env.Logs != nil {
		step.Stdout = env.Logs.Writer(source, logs.Stdout)
		step.Stderr = env.Logs.Writer(source, logs.Stderr)
	}
	files := r.GetVolumeMountedFiles()
	if len(files) == 0 {
		return step
	}
	return Serial{WriteFiles{Container: env.Container, Files: files}, step}
}

// EnvList renders environment variables as NAME=value strings.
func EnvList(env []*models.EnvironmentVariable) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = e.GetName() + "=" + e.GetValue()
	}
	return out
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
