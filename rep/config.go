package rep

import (
	"fmt"
	"regexp"
	"time"

	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Config is the rep daemon's configuration. Every key can come from a YAML
// or JSON file and be overridden by a flag of the same name.
type Config struct {
	// CellID names the cell (unique in the deployment); Zone is its
	// availability zone.
	CellID string `json:"cell_id"`
	Zone   string `json:"zone"`
	// ListenAddress is where the rep API listens; AdvertiseAddress is what
	// the cell announces (default: the bound listen address).
	ListenAddress    string `json:"listen_address"`
	AdvertiseAddress string `json:"advertise_address"`
	// DebugAddress serves /metrics, /debug/pprof and /healthz.
	DebugAddress string `json:"debug_address"`
	// BBSAddress is the BBS the rep reports to.
	BBSAddress string `json:"bbs_address"`
	// ca_cert, cert, key, insecure: the rep API serves with the
	// certificate and presents it to the BBS.
	tlsutil.Files
	// GardenNetwork ("unix" or "tcp") and GardenAddress reach the Garden
	// server that runs the cell's containers.
	GardenNetwork string `json:"garden_network"`
	GardenAddress string `json:"garden_address"`
	// MemoryMB and DiskMB are the capacity offered (0: what Garden
	// reports); MaxContainers the container slots.
	MemoryMB      int `json:"memory_mb"`
	DiskMB        int `json:"disk_mb"`
	MaxContainers int `json:"max_containers"`
	// PreloadedRootFSes are the stacks the cell runs (rootfs
	// preloaded:NAME); RootFSProviders the other schemes it runs any image
	// of (e.g. docker, oci).
	PreloadedRootFSes []string `json:"preloaded_rootfses"`
	RootFSProviders   []string `json:"rootfs_providers"`
	// PlacementTags must all be asked for by work placed here;
	// OptionalPlacementTags may be.
	PlacementTags         []string `json:"placement_tags"`
	OptionalPlacementTags []string `json:"optional_placement_tags"`
	// CacheDir holds the download cache.
	CacheDir string `json:"cache_dir"`
	// PollInterval, EvacuationPollInterval, EvacuationTimeout: see
	// CellConfig.
	PollInterval           config.Duration `json:"poll_interval"`
	EvacuationPollInterval config.Duration `json:"evacuation_poll_interval"`
	EvacuationTimeout      config.Duration `json:"evacuation_timeout"`
	// PresenceTTL is the lease of the cell's presence in etcd.
	PresenceTTL config.Duration `json:"presence_ttl"`
	// gossip_bind_address, gossip_bind_port, gossip_join,
	// gossip_key_file, gossip_local: the pool the cell announces itself in
	// (its seeds are the auctioneers').
	gossip.PoolConfig
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout config.Duration `json:"shutdown_timeout"`
	LogLevel        string          `json:"log_level"`
}

// DefaultConfig returns the defaults: loopback addresses, Diego's numbers.
func DefaultConfig() Config {
	return Config{
		Zone:                   "z1",
		ListenAddress:          "127.0.0.1:1801",
		DebugAddress:           "127.0.0.1:17019",
		BBSAddress:             "127.0.0.1:8889",
		GardenNetwork:          "unix",
		GardenAddress:          "/var/run/gavel/garden.sock",
		MaxContainers:          250,
		PreloadedRootFSes:      []string{"busybox"},
		CacheDir:               "/var/lib/gavel/rep/cache",
		PollInterval:           config.Duration(DefaultPollInterval),
		EvacuationPollInterval: config.Duration(DefaultEvacuationPollInterval),
		EvacuationTimeout:      config.Duration(DefaultEvacuationTimeout),
		PresenceTTL:            config.Duration(DefaultPresenceTTL),
		PoolConfig:             gossip.PoolConfig{GossipBindAddress: "127.0.0.1"},
		ShutdownTimeout:        config.Duration(10 * time.Second),
		LogLevel:               "info",
	}
}

// LoadConfig reads a YAML or JSON file over the defaults.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	err := config.Load(path, &cfg)
	return cfg, err
}

var cellIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// Validate names the first bad key.
func (c Config) Validate() error {
	if !cellIDPattern.MatchString(c.CellID) {
		return fmt.Errorf("cell_id %q: must match [a-zA-Z0-9_-]+", c.CellID)
	}
	if err := config.CheckAddresses(
		config.Address{Key: "listen_address", Value: c.ListenAddress},
		config.Address{Key: "bbs_address", Value: c.BBSAddress},
		config.Address{Key: "advertise_address", Value: c.AdvertiseAddress, Optional: true},
		config.Address{Key: "debug_address", Value: c.DebugAddress, Optional: true},
	); err != nil {
		return err
	}
	if err := c.Files.Validate(); err != nil {
		return err
	}
	switch c.GardenNetwork {
	case "unix", "tcp":
	default:
		return fmt.Errorf("garden_network %q: must be unix or tcp", c.GardenNetwork)
	}
	if c.GardenAddress == "" {
		return fmt.Errorf("garden_address: must be set")
	}
	switch {
	case c.MemoryMB < 0 || c.DiskMB < 0:
		return fmt.Errorf("memory_mb and disk_mb: must not be negative (0: what Garden reports)")
	case c.MaxContainers < 1:
		return fmt.Errorf("max_containers: must be at least 1")
	case len(c.PreloadedRootFSes)+len(c.RootFSProviders) == 0:
		return fmt.Errorf("preloaded_rootfses and rootfs_providers: the cell must offer some rootfs")
	case c.CacheDir == "":
		return fmt.Errorf("cache_dir: must be set")
	case c.PollInterval.D() <= 0 || c.EvacuationPollInterval.D() <= 0:
		return fmt.Errorf("poll_interval and evacuation_poll_interval: must be positive")
	case c.EvacuationTimeout.D() <= 0:
		return fmt.Errorf("evacuation_timeout: must be positive")
	case c.PresenceTTL.D() < time.Second:
		return fmt.Errorf("presence_ttl: must be at least 1s")
	}
	if err := c.PoolConfig.Validate(); err != nil {
		return err
	}
	return config.CheckLogLevel(c.LogLevel)
}

// Info is the cell as the rep announces it.
func (c Config) Info() CellInfo {
	var providers []*models.Provider
	if len(c.PreloadedRootFSes) > 0 {
		providers = append(providers, &models.Provider{Name: "preloaded", Properties: c.PreloadedRootFSes})
	}
	for _, p := range c.RootFSProviders {
		providers = append(providers, &models.Provider{Name: p})
	}
	return CellInfo{CellID: c.CellID, Zone: c.Zone, RepAddress: c.AdvertiseAddress, RootFSProviders: providers,
		PlacementTags: c.PlacementTags, OptionalPlacementTags: c.OptionalPlacementTags}
}
