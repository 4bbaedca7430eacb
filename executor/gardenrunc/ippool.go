package gardenrunc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// ipPool hands out container addresses from a CIDR. Offset 0 is the
// network address, offset 1 the bridge (gateway), the last the broadcast
// address; containers get the offsets in between. Not safe for concurrent
// use: the backend guards it.
type ipPool struct {
	network *net.IPNet
	base    uint32
	size    uint32 // addresses in the CIDR
	used    map[uint32]bool
	next    uint32
}

var errPoolExhausted = errors.New("ip pool exhausted")

func newIPPool(cidr string) (*ipPool, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ip4 := n.IP.To4()
	if ip4 == nil {
		return nil, fmt.Errorf("%s: not IPv4", cidr)
	}
	ones, bits := n.Mask.Size()
	return &ipPool{network: n, base: binary.BigEndian.Uint32(ip4), size: 1 << (bits - ones), used: map[uint32]bool{}, next: 2}, nil
}

// capacity is how many containers fit.
func (p *ipPool) capacity() int { return int(p.size) - 3 }

func (p *ipPool) ip(off uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, p.base+off)
	return ip
}

// gateway is the bridge's address.
func (p *ipPool) gateway() net.IP { return p.ip(1) }

func (p *ipPool) offset(ip net.IP) (uint32, bool) {
	ip4 := ip.To4()
	if ip4 == nil || !p.network.Contains(ip4) {
		return 0, false
	}
	return binary.BigEndian.Uint32(ip4) - p.base, true
}

// acquire takes the next free address, round-robin so a released address
// is not reused at once (stale ARP and conntrack entries age out).
func (p *ipPool) acquire() (net.IP, uint32, error) {
	n := p.size - 3
	for i := uint32(0); i < n; i++ {
		off := 2 + (p.next-2+i)%n
		if !p.used[off] {
			p.used[off] = true
			p.next = off + 1
			return p.ip(off), off, nil
		}
	}
	return nil, 0, errPoolExhausted
}

// claim takes a specific address (a spec's fixed IP, or a restored
// container's).
func (p *ipPool) claim(ip net.IP) (uint32, error) {
	off, ok := p.offset(ip)
	if !ok || off < 2 || off >= p.size-1 {
		return 0, fmt.Errorf("address %s is not a container address of pool %s", ip, p.network)
	}
	if p.used[off] {
		return 0, fmt.Errorf("address %s already in use", ip)
	}
	p.used[off] = true
	return off, nil
}

func (p *ipPool) release(off uint32) { delete(p.used, off) }

// portPool hands out NetIn host ports, guarded like ipPool.
type portPool struct {
	start, size int
	used        map[int]bool
	next        int
}

func newPortPool(start, size int) *portPool {
	return &portPool{start: start, size: size, used: map[int]bool{}}
}

func (p *portPool) acquire() (int, error) {
	for i := 0; i < p.size; i++ {
		port := p.start + (p.next+i)%p.size
		if !p.used[port] {
			p.used[port] = true
			p.next = (port - p.start + 1) % p.size
			return port, nil
		}
	}
	return 0, errors.New("port pool exhausted")
}

// claim records a port chosen by the client; ports outside the pool are
// tracked too so two containers cannot map the same one.
func (p *portPool) claim(port int) error {
	if p.used[port] {
		return fmt.Errorf("host port %d already mapped", port)
	}
	p.used[port] = true
	return nil
}

func (p *portPool) release(port int) { delete(p.used, port) }
