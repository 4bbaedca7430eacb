package executor

import "fmt"

// validateResource refuses a request no cell could ever satisfy.
func validateResource(r Resource) error {
	switch {
	case r.MemoryMB < 0:
		return fmt.Errorf("%w: memory_mb must not be negative, got %d", ErrInvalidRequest, r.MemoryMB)
	case r.DiskMB < 0:
		return fmt.Errorf("%w: disk_mb must not be negative, got %d", ErrInvalidRequest, r.DiskMB)
	case r.MaxPids < 0:
		return fmt.Errorf("%w: max_pids must not be negative, got %d", ErrInvalidRequest, r.MaxPids)
	}
	return nil
}

// fits reports whether one more container of r fits in the remaining
// capacity, and if not, what is short.
func (rem Resources) fits(r Resource) error {
	switch {
	case rem.Containers < 1:
		return fmt.Errorf("%w: no container slot left", ErrInsufficientResources)
	case r.MemoryMB > rem.MemoryMB:
		return fmt.Errorf("%w: memory %d MB requested, %d MB remaining", ErrInsufficientResources, r.MemoryMB, rem.MemoryMB)
	case r.DiskMB > rem.DiskMB:
		return fmt.Errorf("%w: disk %d MB requested, %d MB remaining", ErrInsufficientResources, r.DiskMB, rem.DiskMB)
	}
	return nil
}

// take returns the capacity left after one container of r.
func (rem Resources) take(r Resource) Resources {
	return Resources{MemoryMB: rem.MemoryMB - r.MemoryMB, DiskMB: rem.DiskMB - r.DiskMB, Containers: rem.Containers - 1}
}

// give returns the capacity after one container of r is released.
func (rem Resources) give(r Resource) Resources {
	return Resources{MemoryMB: rem.MemoryMB + r.MemoryMB, DiskMB: rem.DiskMB + r.DiskMB, Containers: rem.Containers + 1}
}
