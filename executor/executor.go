package executor

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/executor/download"
	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/logs"
	"github.com/gavel-scheduler/gavel/executor/steps"
)

// GardenClient is the part of a Garden client the executor uses;
// garden.Client satisfies it.
type GardenClient interface {
	Ping(ctx context.Context) error
	Capacity(ctx context.Context) (garden.Capacity, error)
	Create(ctx context.Context, spec garden.ContainerSpec) (garden.Container, error)
	Destroy(ctx context.Context, handle string) error
	Containers(ctx context.Context, filter garden.Properties) ([]garden.Container, error)
}

// Executor runs containers on one cell. It is safe for concurrent use.
// Every goroutine it starts (the reservation pruner, one lifecycle per
// container) is owned by it and ends in Close.
type Executor struct {
	cfg     Config
	garden  GardenClient
	store   *store
	hub     *hub
	fetcher steps.Fetcher
	log     *slog.Logger
	now     func() time.Time

	// ctx is the executor's life; Close cancels it with steps.ErrDetached
	// so lifecycles end without touching their containers.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// mu guards stopping: no goroutine is added to wg once Close began.
	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup
	once     sync.Once
}

// spawn runs fn in a goroutine owned by the executor, unless it is closing.
func (e *Executor) spawn(fn func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return false
	}
	e.wg.Go(fn)
	return true
}

// New starts an executor over a Garden client: it resolves "auto"
// capacity, opens the download cache, adopts the containers a previous
// executor with the same Owner left in Garden, and starts the reservation
// pruner.
func New(ctx context.Context, cfg Config, client GardenClient) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("executor config: %w", err)
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "executor")
	total := Resources{MemoryMB: cfg.MemoryMB, DiskMB: cfg.DiskMB, Containers: cfg.MaxContainers}
	if total.MemoryMB == 0 || total.DiskMB == 0 {
		capacity, err := client.Capacity(ctx)
		if err != nil {
			return nil, fmt.Errorf("executor: garden capacity for auto resources: %w", err)
		}
		if total.MemoryMB == 0 {
			total.MemoryMB = int(capacity.MemoryInBytes >> 20)
		}
		if total.DiskMB == 0 {
			total.DiskMB = int(capacity.DiskInBytes >> 20)
		}
	}
	cache, err := download.NewCache(download.Config{Dir: cfg.DownloadCacheDir, MaxBytes: cfg.DownloadCacheMaxBytes, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	h := newHub(cfg.EventBuffer)
	e := &Executor{
		cfg: cfg, garden: client, hub: h, log: log, now: time.Now,
		store:   newStore(total, h, cfg.LogLines, cfg.LogBytes),
		fetcher: &limitedFetcher{f: cache, slots: make(chan struct{}, cfg.MaxConcurrentDownloads)},
	}
	e.ctx, e.cancel = context.WithCancelCause(context.Background())
	if err := e.restore(ctx); err != nil {
		e.Close()
		return nil, fmt.Errorf("executor: restore: %w", err)
	}
	e.spawn(e.pruneReservations)
	log.Info("executor started", "memory_mb", total.MemoryMB, "disk_mb", total.DiskMB, "max_containers", total.Containers)
	return e, nil
}

// Close stops the executor's goroutines and event subscriptions. Containers
// and their processes are left running in Garden for the next executor to
// adopt; use DeleteContainer to remove them.
func (e *Executor) Close() {
	e.once.Do(func() {
		e.mu.Lock()
		e.stopping = true
		e.mu.Unlock()
		e.cancel(steps.ErrDetached)
		e.wg.Wait()
		e.hub.close()
	})
}

func (e *Executor) closed() bool { return e.ctx.Err() != nil }

// AllocateContainers reserves resources for each request. Each one is
// atomic: it either takes its memory, disk and a container slot, or fails
// (invalid request, guid taken, insufficient resources) and is returned in
// the failures. A RESERVED container completes as "expired container" if
// RunContainer does not come within Config.ReservedExpiration.
func (e *Executor) AllocateContainers(ctx context.Context, reqs []AllocationRequest) ([]AllocationFailure, error) {
	if e.closed() {
		return nil, ErrClosed
	}
	return e.store.allocate(reqs, e.now()), nil
}

// GetContainer returns one container, or ErrContainerNotFound.
func (e *Executor) GetContainer(ctx context.Context, guid string) (Container, error) {
	return e.store.get(guid)
}

// ListContainers returns the containers carrying every tag of filter (all
// of them for an empty filter), ordered by guid.
func (e *Executor) ListContainers(ctx context.Context, filter Tags) ([]Container, error) {
	return e.store.list(filter), nil
}

// RemainingResources is the capacity not taken by any container, including
// reservations and completed containers not yet deleted.
func (e *Executor) RemainingResources(ctx context.Context) (Resources, error) {
	rem, _ := e.store.resources()
	return rem, nil
}

// TotalResources is the cell's capacity.
func (e *Executor) TotalResources(ctx context.Context) (Resources, error) {
	_, total := e.store.resources()
	return total, nil
}

// Ping reports whether Garden answers.
func (e *Executor) Ping(ctx context.Context) error {
	if err := e.garden.Ping(ctx); err != nil {
		return fmt.Errorf("garden ping: %w", err)
	}
	return nil
}

// SubscribeToEvents returns a subscription to every container event from
// now on. Close it when done.
func (e *Executor) SubscribeToEvents(ctx context.Context) (*Subscription, error) {
	return e.hub.subscribe()
}

// Logs returns the container's log ring, to Read or Follow.
func (e *Executor) Logs(guid string) (*logs.Ring, error) {
	n, err := e.store.node(guid)
	if err != nil {
		return nil, err
	}
	return n.logs, nil
}

// StopContainer ends a container's processes; it completes with
// stopped=true. It returns once the container is COMPLETED (or ctx ends).
// Stopping a completed container does nothing.
func (e *Executor) StopContainer(ctx context.Context, guid string) error {
	cancel, done, err := e.store.stop(guid)
	if err != nil || cancel == nil {
		return err
	}
	cancel(errStopped)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", guid, ctx.Err())
	}
}

var errStopped = errors.New("container stopped")

// DeleteContainer stops a container if it runs, destroys its Garden
// container and forgets it, freeing its resources. The guid stays taken
// until the Garden container is gone; a failed destroy can be retried.
func (e *Executor) DeleteContainer(ctx context.Context, guid string) error {
	n, err := e.store.node(guid)
	if err != nil {
		return err
	}
	e.store.mu.Lock()
	n.deleting = true
	cancel, done := n.cancel, n.done
	e.store.mu.Unlock()
	if cancel != nil {
		cancel(errStopped)
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("delete %s: %w", guid, ctx.Err())
		}
	}
	e.store.complete(guid, RunResult{Stopped: true})
	e.store.mu.Lock()
	hasGarden := n.gc != nil || cancel != nil
	e.store.mu.Unlock()
	if hasGarden {
		// Only a lifecycle (or restore) makes a Garden container; a
		// bare reservation has none to destroy.
		err := e.garden.Destroy(ctx, guid)
		var notFound garden.ContainerNotFoundError
		if err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("delete %s: destroy garden container: %w", guid, err)
		}
	}
	e.store.remove(guid)
	e.log.Info("container deleted", "container_guid", guid)
	return nil
}

// GetFiles returns a tar stream of path in the container (see
// garden.StreamOutSpec for the layout). The caller closes it.
func (e *Executor) GetFiles(ctx context.Context, guid, path string) (io.ReadCloser, error) {
	n, err := e.store.node(guid)
	if err != nil {
		return nil, err
	}
	e.store.mu.Lock()
	gc := n.gc
	e.store.mu.Unlock()
	if gc == nil {
		return nil, fmt.Errorf("get files of %s: %w: no garden container yet", guid, ErrInvalidTransition)
	}
	rc, err := gc.StreamOut(ctx, garden.StreamOutSpec{Path: path})
	if err != nil {
		return nil, fmt.Errorf("get files %s of %s: %w", path, guid, err)
	}
	return rc, nil
}

// ReadFile returns the content of one file in the container (a task's
// result file), refusing files larger than limit bytes with
// ErrFileTooLarge.
func (e *Executor) ReadFile(ctx context.Context, guid, path string, limit int64) ([]byte, error) {
	rc, err := e.GetFiles(ctx, guid, path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s of %s: not a regular file", path, guid)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", path, guid, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if hdr.Size > limit {
			return nil, fmt.Errorf("read %s of %s: %w: %d bytes, limit %d", path, guid, ErrFileTooLarge, hdr.Size, limit)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", path, guid, err)
		}
		return b, nil
	}
}

// pruneReservations completes reservations older than ReservedExpiration,
// every PruneInterval, until Close.
func (e *Executor) pruneReservations() {
	ticker := time.NewTicker(e.cfg.PruneInterval)
	defer ticker.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-ticker.C:
		}
		for _, guid := range e.store.expired(e.now().Add(-e.cfg.ReservedExpiration)) {
			if _, ok := e.store.complete(guid, RunResult{Failed: true, FailureReason: "expired container"}); ok {
				e.log.Info("reservation expired", "container_guid", guid)
			}
		}
	}
}

// limitedFetcher bounds the downloads in flight.
type limitedFetcher struct {
	f     steps.Fetcher
	slots chan struct{}
}

func (l *limitedFetcher) Fetch(ctx context.Context, req download.Request) (*download.Artifact, error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.slots }()
	return l.f.Fetch(ctx, req)
}
