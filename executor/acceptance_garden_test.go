package executor_test

import (
	"testing"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/gardentest"
)

// startGarden runs the runc-backed Garden server on a unix socket over a
// fresh busybox rootfs and returns a client. Everything it made is
// destroyed at cleanup.
func startGarden(t *testing.T) garden.Client {
	sock := gardentest.Start(t, gardentest.Options{Tag: "gvx", NetworkPool: "10.254.40.0/24", PortPoolStart: 62001})
	return garden.NewClient("unix", sock)
}
