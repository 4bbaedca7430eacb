package clientconfig

import (
	"strings"
	"testing"
)

func TestRouteEmitterAddress(t *testing.T) {
	c := Config{BBSAddress: "127.0.0.1:8889", Insecure: true, RouteEmitterAddress: "127.0.0.1:9018"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.RouteEmitterAddress = "no-port"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "route_emitter_address") {
		t.Fatalf("bad address: %v", err)
	}
}
