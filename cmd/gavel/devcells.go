package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tedsuo/ifrit"
	"github.com/tedsuo/ifrit/grouper"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/gardenrunc"
	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/testrootfs"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/rep"
)

// devCell is one cell of gavel dev: a Garden server on runc with its own
// depot, bridge network and host-port range, and a rep in front of it.
type devCell struct {
	id      string
	backend *gardenrunc.Backend
	garden  *garden.Server
	socket  string
	rep     *rep.Process
}

// devCellPorts is the host-port range of each dev cell.
const devCellPorts = 1000

// devRootFS builds (once) the busybox rootfs dev containers run, from
// Debian's busybox-static: nothing is downloaded.
func devRootFS(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "rootfs", "busybox")
	if _, err := os.Stat(filepath.Join(dir, "bin", "busybox")); err == nil {
		return dir, nil
	}
	tmp := dir + ".building"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := testrootfs.Build(tmp, ""); err != nil {
		return "", fmt.Errorf("busybox rootfs: %w (hack/deps.sh dev installs busybox-static)", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.Rename(tmp, dir)
}

// newDevCells prepares n cells: cell-1..cell-n in zones z1..zn, each with
// a /22 of 10.253.0.0/16 and its own host ports from 61000.
func newDevCells(o devOptions, dataDir string, certs tlsutil.Paths, gossipSeed string, logger *slog.Logger) ([]*devCell, error) {
	if o.cells == 0 {
		return nil, nil
	}
	if o.cells < 0 || o.cells > 16 {
		return nil, fmt.Errorf("--cells %d: between 0 and 16", o.cells)
	}
	rootfs, err := devRootFS(dataDir)
	if err != nil {
		return nil, err
	}
	rc := certs.Components["rep"]
	var cells []*devCell
	for i := 1; i <= o.cells; i++ {
		id := fmt.Sprintf("cell-%d", i)
		dir := filepath.Join(dataDir, "cells", id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		backend, err := gardenrunc.New(gardenrunc.Config{
			Depot: filepath.Join(dir, "depot"), RuncRoot: filepath.Join(dir, "runc"),
			DefaultRootFS: rootfs, Preloaded: map[string]string{"busybox": rootfs},
			NetworkPool: fmt.Sprintf("10.253.%d.0/22", 4*(i-1)), Tag: fmt.Sprintf("gdev%d", i),
			ExternalIP: "127.0.0.1", PortPoolStart: 61000 + (i-1)*devCellPorts, PortPoolSize: devCellPorts,
			StopTimeout: 5 * time.Second,
		}, logger.With("component", "garden", "cell_id", id))
		if err != nil {
			return nil, fmt.Errorf("%s garden: %w", id, err)
		}
		socket := filepath.Join(dir, "garden.sock")
		cfg := rep.DefaultConfig()
		cfg.CellID, cfg.Zone = id, fmt.Sprintf("z%d", i)
		cfg.ListenAddress, cfg.DebugAddress = "127.0.0.1:0", ""
		cfg.BBSAddress = o.bbsAddress
		cfg.CACert, cfg.Cert, cfg.Key = certs.CACert, rc.Cert, rc.Key
		cfg.GardenNetwork, cfg.GardenAddress = "unix", socket
		cfg.MemoryMB, cfg.DiskMB = o.cellMemoryMB, o.cellMemoryMB*4
		cfg.CacheDir = filepath.Join(dir, "cache")
		cfg.GossipBindPort, cfg.GossipJoin, cfg.GossipLocal = 0, []string{gossipSeed}, true
		cfg.PollInterval = config.Duration(o.repPoll)
		cfg.EvacuationPollInterval = config.Duration(min(o.repPoll, rep.DefaultEvacuationPollInterval))
		cfg.LogLevel = o.logLevel
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		cells = append(cells, &devCell{
			id:      id,
			backend: backend,
			garden:  garden.NewServer(garden.ServerConfig{Network: "unix", Address: socket}, backend, logger.With("component", "garden", "cell_id", id)),
			socket:  socket,
			rep:     rep.NewProcess(cfg, nil, logger),
		})
	}
	return cells, nil
}

// members runs each cell's Garden server before its rep.
func devCellMembers(cells []*devCell, destroyOnExit bool) grouper.Members {
	var members grouper.Members
	for _, c := range cells {
		var g ifrit.Runner = c.garden
		if destroyOnExit {
			g = destroyingGarden{c}
		}
		members = append(members, grouper.Member{Name: c.id + "-garden", Runner: g}, grouper.Member{Name: c.id + "-rep", Runner: c.rep})
	}
	return members
}

// destroyingGarden runs a cell's Garden server and, once it has stopped,
// tears the cell down: every container destroyed, its bridge and iptables
// chains removed (gavel dev --destroy-on-exit).
type destroyingGarden struct{ c *devCell }

func (d destroyingGarden) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	err := d.c.garden.Run(signals, ready)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return errors.Join(err, d.c.backend.Teardown(ctx))
}
