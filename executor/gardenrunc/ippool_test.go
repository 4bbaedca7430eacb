package gardenrunc

import (
	"net"
	"testing"
)

func TestIPPool(t *testing.T) {
	tests := []struct {
		name     string
		cidr     string
		capacity int
		first    string
		gateway  string
	}{
		{"slash 22", "10.254.0.0/22", 1021, "10.254.0.2", "10.254.0.1"},
		{"slash 29", "10.254.8.0/29", 5, "10.254.8.2", "10.254.8.1"},
		{"unaligned", "10.254.8.5/29", 5, "10.254.8.2", "10.254.8.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newIPPool(tt.cidr)
			if err != nil {
				t.Fatal(err)
			}
			if p.capacity() != tt.capacity {
				t.Fatalf("capacity %d, want %d", p.capacity(), tt.capacity)
			}
			if p.gateway().String() != tt.gateway {
				t.Fatalf("gateway %s", p.gateway())
			}
			ip, _, err := p.acquire()
			if err != nil || ip.String() != tt.first {
				t.Fatalf("first = %s, %v", ip, err)
			}
		})
	}
}

func TestIPPoolExhaustionAndReuse(t *testing.T) {
	p, _ := newIPPool("10.254.8.0/29") // .2 .. .6
	var offs []uint32
	for i := 0; i < 5; i++ {
		ip, off, err := p.acquire()
		if err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
		if ip.Equal(p.gateway()) || ip.String() == "10.254.8.7" {
			t.Fatalf("handed out reserved address %s", ip)
		}
		offs = append(offs, off)
	}
	if _, _, err := p.acquire(); err != errPoolExhausted {
		t.Fatalf("sixth acquire = %v", err)
	}
	p.release(offs[2])
	ip, _, err := p.acquire()
	if err != nil || ip.String() != "10.254.8.4" {
		t.Fatalf("reacquire = %s, %v", ip, err)
	}
	for _, tc := range []struct {
		ip   string
		fail bool
	}{{"10.254.8.4", true}, {"10.254.8.1", true}, {"10.254.8.7", true}, {"10.254.9.2", true}, {"10.254.8.0", true}} {
		if _, err := p.claim(net.ParseIP(tc.ip)); (err != nil) != tc.fail {
			t.Errorf("claim %s: err %v", tc.ip, err)
		}
	}
	p.release(offs[0])
	if _, err := p.claim(net.ParseIP("10.254.8.2")); err != nil {
		t.Fatalf("claim released: %v", err)
	}
}

func TestPortPool(t *testing.T) {
	p := newPortPool(61001, 2)
	a, _ := p.acquire()
	b, _ := p.acquire()
	if a != 61001 || b != 61002 {
		t.Fatalf("ports %d %d", a, b)
	}
	if _, err := p.acquire(); err == nil {
		t.Fatal("third port from a pool of two")
	}
	if err := p.claim(61001); err == nil {
		t.Fatal("claimed a used port")
	}
	p.release(a)
	if c, err := p.acquire(); err != nil || c != 61001 {
		t.Fatalf("reacquire = %d, %v", c, err)
	}
	if err := p.claim(8080); err != nil {
		t.Fatal(err)
	}
}
