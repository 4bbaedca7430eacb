// Package config loads component configuration files: YAML or JSON, with
// unknown keys refused so a typo is caught at start-up rather than ignored.
package config

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// Load reads path (YAML or JSON) into cfg, over whatever cfg already holds
// (its defaults).
func Load(path string, cfg any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Duration is a time.Duration written as "10s" or "1m30s" in config files.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "10s"-style strings (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if nerr := json.Unmarshal(b, &n); nerr != nil {
			return fmt.Errorf("duration must be a string like \"10s\": %s", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Address is a host:port config value to check: Key names it in errors;
// an Optional one may be empty.
type Address struct {
	Key, Value string
	Optional   bool
}

// CheckAddresses returns the first address that is not host:port.
func CheckAddresses(addrs ...Address) error {
	for _, a := range addrs {
		if a.Value == "" && a.Optional {
			continue
		}
		if _, _, err := net.SplitHostPort(a.Value); err != nil {
			return fmt.Errorf("%s %q: %w", a.Key, a.Value, err)
		}
	}
	return nil
}

// CheckLogLevel checks a log_level value.
func CheckLogLevel(level string) error {
	switch level {
	case "debug", "info", "warn", "error":
		return nil
	}
	return fmt.Errorf("log_level %q: must be debug, info, warn or error", level)
}
