package executor

import (
	"context"
	"fmt"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// restore adopts the containers a previous executor with the same owner
// left in Garden. Completed ones keep their result; the others get a
// lifecycle that re-attaches to their processes (and re-runs setup if it
// had not finished). Containers that were never fully created, or whose
// properties cannot be read back, are destroyed: nothing could run them.
func (e *Executor) restore(ctx context.Context) error {
	found, err := e.garden.Containers(ctx, garden.Properties{propOwner: e.cfg.Owner, garden.PropertyState: garden.StateAll})
	if err != nil {
		return fmt.Errorf("list garden containers: %w", err)
	}
	for _, gc := range found {
		guid := gc.Handle()
		log := e.log.With("container_guid", guid)
		props, err := gc.Properties(ctx)
		if err != nil {
			return fmt.Errorf("properties of %s: %w", guid, err)
		}
		c, resume, err := decodeContainer(guid, props)
		if err == nil && props[garden.PropertyState] != garden.StateCreated {
			err = fmt.Errorf("garden state %q", props[garden.PropertyState])
		}
		if err != nil {
			log.Warn("destroying container that cannot be restored", "error", err)
			if err := e.garden.Destroy(ctx, guid); err != nil {
				log.Warn("destroy unrestorable container", "error", err)
			}
			continue
		}
		// The net info is read now, so a restored container answers
		// GetContainer with its addresses at once.
		if info, err := gc.Info(ctx); err == nil {
			c.ExternalIP, c.InternalIP = info.ExternalIP, info.ContainerIP
			for _, m := range info.MappedPorts {
				c.Ports = append(c.Ports, PortMapping{ContainerPort: m.ContainerPort, HostPort: m.HostPort})
			}
		} else {
			log.Warn("container info at restore", "error", err)
		}
		n := e.store.adopt(c, gc)
		log.Info("container restored", "state", c.State)
		if c.State == StateCompleted {
			continue
		}
		lctx, cancel := context.WithCancelCause(e.ctx)
		done := make(chan struct{})
		e.store.update(guid, func(n *node) { n.cancel, n.done = cancel, done })
		if !e.spawn(func() { defer close(done); e.lifecycle(lctx, n, resume) }) {
			cancel(nil)
			close(done)
		}
	}
	return nil
}
