package auctioneer

import "testing"

// The shipped example config loads (no unknown keys) and is valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../manifests/config/auctioneer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.ElectionTTL.D().Seconds() != 15 || cfg.Cert != "/etc/gavel/certs/auctioneer.crt" {
		t.Fatalf("config %+v", cfg)
	}
}
