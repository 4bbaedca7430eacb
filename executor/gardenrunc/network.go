package gardenrunc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// network owns the host side of container networking: one bridge holding
// the pool's gateway address, a veth per container (ports isolated from
// each other, so containers reach the host and the outside but not each
// other), and iptables chains named from the tag:
//
//	filter <tag>-input    from INPUT for the bridge: replies only, unless host access is allowed
//	filter <tag>-forward  from FORWARD for the bridge: per-container NetOut chains, then <tag>-default
//	filter <tag>-default  the deny-network rejections, then accept
//	filter FORWARD -o <bridge>  accepts DNATed and reply traffic to containers
//	filter <tag>-o<n>     a container's NetOut rules (created on first use)
//	nat    <tag>-prerouting  from PREROUTING and OUTPUT: per-container DNAT chains
//	nat    <tag>-n<n>     a container's NetIn DNAT rules (created on first use)
//	nat    <tag>-postrouting from POSTROUTING: masquerade to the outside and for loopback DNAT
type network struct {
	tag        string
	bridge     string
	pool       *ipPool
	externalIP net.IP
	mtu        int
	deny       []string
	hostAccess bool
	ipt        *iptables.IPTables
}

func newNetwork(cfg Config) (*network, error) {
	pool, err := newIPPool(cfg.NetworkPool)
	if err != nil {
		return nil, err
	}
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(30))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return &network{
		tag: cfg.Tag, bridge: cfg.Tag + "br0", pool: pool, externalIP: net.ParseIP(cfg.ExternalIP).To4(),
		mtu: cfg.MTU, deny: cfg.DenyNetworks, hostAccess: cfg.AllowHostAccess, ipt: ipt,
	}, nil
}

func (n *network) chain(suffix string) string { return n.tag + "-" + suffix }

// vethName is the host side of the container at pool offset off.
func (n *network) vethName(off uint32) string { return fmt.Sprintf("%sh%x", n.tag, off) }

func (n *network) outChain(off uint32) string { return n.chain(fmt.Sprintf("o%x", off)) }
func (n *network) natChain(off uint32) string { return n.chain(fmt.Sprintf("n%x", off)) }

// setup creates the bridge and the global chains; it is idempotent, so a
// restarted server adopts what its predecessor left.
func (n *network) setup() error {
	br, err := netlink.LinkByName(n.bridge)
	if err != nil {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU = n.bridge, n.mtu
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create bridge %s: %w", n.bridge, err)
		}
		if br, err = netlink.LinkByName(n.bridge); err != nil {
			return err
		}
	}
	ones, _ := n.pool.network.Mask.Size()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.pool.gateway(), Mask: net.CIDRMask(ones, 32)}}
	if err := netlink.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("address bridge %s: %w", n.bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bring up bridge %s: %w", n.bridge, err)
	}
	// Host-originated traffic to ExternalIP (127.0.0.1 by default) is
	// DNATed onto the bridge: the kernel must route loopback sources
	// there.
	for _, kv := range [][2]string{
		{"/proc/sys/net/ipv4/ip_forward", "1"},
		{filepath.Join("/proc/sys/net/ipv4/conf", n.bridge, "route_localnet"), "1"},
	} {
		if err := os.WriteFile(kv[0], []byte(kv[1]), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", kv[0], err)
		}
	}
	return n.setupChains()
}

func (n *network) setupChains() error {
	pool := n.pool.network.String()
	type rule struct {
		table, chain string
		spec         []string
	}
	chains := []rule{
		{"filter", n.chain("input"), nil}, {"filter", n.chain("forward"), nil}, {"filter", n.chain("default"), nil},
		{"nat", n.chain("prerouting"), nil}, {"nat", n.chain("postrouting"), nil},
	}
	for _, c := range chains {
		if err := n.ensureChain(c.table, c.chain); err != nil {
			return err
		}
	}
	// Rebuild the global chains' content from config, so a changed
	// config takes effect on restart.
	for _, c := range []rule{{"filter", n.chain("input"), nil}, {"filter", n.chain("default"), nil}, {"nat", n.chain("postrouting"), nil}} {
		if err := n.ipt.ClearChain(c.table, c.chain); err != nil {
			return fmt.Errorf("clear %s: %w", c.chain, err)
		}
	}
	rules := []rule{
		{"filter", n.chain("input"), []string{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"}},
		{"nat", n.chain("postrouting"), []string{"-s", pool, "!", "-d", pool, "-j", "MASQUERADE"}},
		{"nat", n.chain("postrouting"), []string{"-s", "127.0.0.0/8", "-d", pool, "-o", n.bridge, "-j", "MASQUERADE"}},
	}
	if !n.hostAccess {
		rules = append(rules, rule{"filter", n.chain("input"), []string{"-j", "REJECT", "--reject-with", "icmp-port-unreachable"}})
	}
	for _, d := range n.deny {
		rules = append(rules, rule{"filter", n.chain("default"), []string{"-d", d, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"}})
	}
	// What no deny network stops is accepted here, whatever FORWARD's
	// policy (hosts running Docker set it to DROP).
	rules = append(rules, rule{"filter", n.chain("default"), []string{"-j", "ACCEPT"}})
	for _, r := range rules {
		if err := n.ipt.Append(r.table, r.chain, r.spec...); err != nil {
			return fmt.Errorf("iptables %s: %w", r.chain, err)
		}
	}
	// The forward chain keeps per-container jumps across restarts; only
	// its tail is ensured.
	tail := []string{"-j", n.chain("default")}
	if err := n.ipt.DeleteIfExists("filter", n.chain("forward"), tail...); err != nil {
		return err
	}
	if err := n.ipt.Append("filter", n.chain("forward"), tail...); err != nil {
		return err
	}
	jumps := []rule{
		{"filter", "INPUT", []string{"-i", n.bridge, "-j", n.chain("input")}},
		{"filter", "FORWARD", []string{"-i", n.bridge, "-j", n.chain("forward")}},
		{"filter", "FORWARD", forwardInbound(n.bridge)},
		{"nat", "PREROUTING", []string{"-j", n.chain("prerouting")}},
		{"nat", "OUTPUT", []string{"-j", n.chain("prerouting")}},
		{"nat", "POSTROUTING", []string{"-j", n.chain("postrouting")}},
	}
	for _, j := range jumps {
		if err := n.ipt.InsertUnique(j.table, j.chain, 1, j.spec...); err != nil {
			return fmt.Errorf("iptables jump %s -> %s: %w", j.chain, j.spec[len(j.spec)-1], err)
		}
	}
	return nil
}

// forwardInbound admits traffic to containers that NetIn mapped or that
// answers their own connections.
func forwardInbound(bridge string) []string {
	return []string{"-o", bridge, "-m", "conntrack", "--ctstate", "DNAT,ESTABLISHED,RELATED", "-j", "ACCEPT"}
}

func (n *network) ensureChain(table, chain string) error {
	ok, err := n.ipt.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("iptables %s: %w", chain, err)
	}
	if !ok {
		if err := n.ipt.NewChain(table, chain); err != nil {
			return fmt.Errorf("iptables new chain %s: %w", chain, err)
		}
	}
	return nil
}

// teardown removes everything setup created. Only for a server that is
// going away with all its containers (tests, `gavel garden --cleanup`).
func (n *network) teardown() error {
	var errs []error
	jumps := [][]string{
		{"filter", "INPUT", "-i", n.bridge, "-j", n.chain("input")},
		{"filter", "FORWARD", "-i", n.bridge, "-j", n.chain("forward")},
		append([]string{"filter", "FORWARD"}, forwardInbound(n.bridge)...),
		{"nat", "PREROUTING", "-j", n.chain("prerouting")},
		{"nat", "OUTPUT", "-j", n.chain("prerouting")},
		{"nat", "POSTROUTING", "-j", n.chain("postrouting")},
	}
	for _, j := range jumps {
		if err := n.ipt.DeleteIfExists(j[0], j[1], j[2:]...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, table := range []string{"filter", "nat"} {
		chains, err := n.ipt.ListChains(table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range chains {
			if strings.HasPrefix(c, n.tag+"-") {
				if err := n.ipt.ClearChain(table, c); err != nil {
					errs = append(errs, err)
				}
			}
		}
		for _, c := range chains {
			if strings.HasPrefix(c, n.tag+"-") {
				if err := n.ipt.DeleteChain(table, c); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if br, err := netlink.LinkByName(n.bridge); err == nil {
		if err := netlink.LinkDel(br); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// attach gives the container whose init is pid its interface: a veth
// pair with the host side on the bridge and the other side created
// directly inside the container's network namespace as eth0 (creating it
// there is much cheaper than moving it in), then addressed and routed.
func (n *network) attach(pid int, ip net.IP, off uint32) error {
	br, err := netlink.LinkByName(n.bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.bridge, err)
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("container netns: %w", err)
	}
	defer ns.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU, la.MasterIndex = n.vethName(off), n.mtu, br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", la.Name, err)
	}
	if err := netlink.LinkSetIsolated(veth, true); err != nil {
		return fmt.Errorf("isolate veth %s: %w", la.Name, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("bring up veth %s: %w", la.Name, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in container: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	ones, _ := n.pool.network.Mask.Size()
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(ones, 32)}}); err != nil {
		return fmt.Errorf("address eth0: %w", err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return err
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: n.pool.gateway()}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return nil
}

// deleteVeth removes the container's veth (its peer goes with it). The
// kernel also removes the pair when the container's network namespace
// dies, possibly between these two calls. Deleting a link waits for an RCU
// grace period (up to tens of milliseconds), which is why the backend does
// this off the destroy path.
func (n *network) deleteVeth(off uint32) error {
	l, err := netlink.LinkByName(n.vethName(off))
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("delete veth %s: %w", n.vethName(off), err)
	}
	return nil
}

// detach removes the container's chains; parts already gone are no error.
func (n *network) detach(ip net.IP, off uint32, chains containerChains) error {
	var errs []error
	if chains.NAT {
		if err := n.ipt.DeleteIfExists("nat", n.chain("prerouting"), "-j", n.natChain(off)); err != nil {
			errs = append(errs, err)
		}
		if err := n.deleteChain("nat", n.natChain(off)); err != nil {
			errs = append(errs, err)
		}
	}
	if chains.Out {
		if err := n.ipt.DeleteIfExists("filter", n.chain("forward"), "-s", ip.String(), "-g", n.outChain(off)); err != nil {
			errs = append(errs, err)
		}
		if err := n.deleteChain("filter", n.outChain(off)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *network) deleteChain(table, chain string) error {
	ok, err := n.ipt.ChainExists(table, chain)
	if err != nil || !ok {
		return err
	}
	return n.ipt.ClearAndDeleteChain(table, chain)
}

// containerChains records which per-container chains exist.
type containerChains struct {
	NAT bool `json:"nat,omitempty"`
	Out bool `json:"out,omitempty"`
}

// netIn DNATs ExternalIP:hostPort to ip:containerPort.
func (n *network) netIn(ip net.IP, off uint32, chains *containerChains, hostPort, containerPort uint32) error {
	if !chains.NAT {
		if err := n.ensureChain("nat", n.natChain(off)); err != nil {
			return err
		}
		if err := n.ipt.AppendUnique("nat", n.chain("prerouting"), "-j", n.natChain(off)); err != nil {
			return err
		}
		chains.NAT = true
	}
	return n.ipt.Append("nat", n.natChain(off), netInRule(n.externalIP, ip, hostPort, containerPort)...)
}

func netInRule(external, ip net.IP, hostPort, containerPort uint32) []string {
	return []string{"-d", external.String(), "-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(int(hostPort)),
		"-j", "DNAT", "--to-destination", net.JoinHostPort(ip.String(), strconv.Itoa(int(containerPort)))}
}

// netOut prepends the rules' iptables expansion to the container's
// NetOut chain.
func (n *network) netOut(ip net.IP, off uint32, chains *containerChains, rules []garden.NetOutRule) error {
	var specs [][]string
	for _, r := range rules {
		s, err := netOutRules(r)
		if err != nil {
			return err
		}
		specs = append(specs, s...)
	}
	if !chains.Out {
		if err := n.ensureChain("filter", n.outChain(off)); err != nil {
			return err
		}
		if err := n.ipt.Append("filter", n.outChain(off), "-j", n.chain("default")); err != nil {
			return err
		}
		if err := n.ipt.Insert("filter", n.chain("forward"), 1, "-s", ip.String(), "-g", n.outChain(off)); err != nil {
			return err
		}
		chains.Out = true
	}
	// Inserted last first, so the chain reads in the rules' order.
	for i := len(specs) - 1; i >= 0; i-- {
		if err := n.ipt.Insert("filter", n.outChain(off), 1, specs[i]...); err != nil {
			return fmt.Errorf("netout rule: %w", err)
		}
	}
	return nil
}

// netOutRules expands one rule into iptables rule specs, one per network
// range and port range combination.
func netOutRules(r garden.NetOutRule) ([][]string, error) {
	switch r.Protocol {
	case garden.ProtocolAll, garden.ProtocolTCP, garden.ProtocolUDP, garden.ProtocolICMP:
	default:
		return nil, fmt.Errorf("invalid protocol %d", r.Protocol)
	}
	if len(r.Ports) > 0 && r.Protocol != garden.ProtocolTCP && r.Protocol != garden.ProtocolUDP {
		return nil, fmt.Errorf("Ports cannot be specified for Protocol %s", strings.ToUpper(r.Protocol.String()))
	}
	if r.ICMPs != nil && r.Protocol != garden.ProtocolICMP {
		return nil, fmt.Errorf("ICMP control cannot be specified for Protocol %s", strings.ToUpper(r.Protocol.String()))
	}
	if r.Log && r.Protocol != garden.ProtocolTCP && r.Protocol != garden.ProtocolAll {
		return nil, errors.New("logging is only supported for tcp and all")
	}
	networks := r.Networks
	if len(networks) == 0 {
		networks = []garden.IPRange{{}}
	}
	ports := r.Ports
	if len(ports) == 0 {
		ports = []garden.PortRange{{}}
	}
	var out [][]string
	for _, nw := range networks {
		for _, pr := range ports {
			spec := []string{"-p", r.Protocol.String()}
			switch {
			case nw.Start != nil && nw.End != nil:
				if nw.Start.To4() == nil || nw.End.To4() == nil {
					return nil, fmt.Errorf("network range %s-%s: IPv4 only", nw.Start, nw.End)
				}
				spec = append(spec, "-m", "iprange", "--dst-range", nw.Start.String()+"-"+nw.End.String())
			case nw.Start != nil:
				spec = append(spec, "-d", nw.Start.String())
			case nw.End != nil:
				spec = append(spec, "-d", nw.End.String())
			}
			if pr.Start != 0 || pr.End != 0 {
				end := pr.End
				if end == 0 {
					end = pr.Start
				}
				if pr.Start > end {
					return nil, fmt.Errorf("port range %d-%d: start after end", pr.Start, end)
				}
				spec = append(spec, "-m", r.Protocol.String(), "--dport", fmt.Sprintf("%d:%d", pr.Start, end))
			}
			if r.ICMPs != nil {
				t := strconv.Itoa(int(r.ICMPs.Type))
				if r.ICMPs.Code != nil {
					t += "/" + strconv.Itoa(int(*r.ICMPs.Code))
				}
				spec = append(spec, "-m", "icmp", "--icmp-type", t)
			}
			if r.Log {
				logged := append(append([]string(nil), spec...), "-m", "conntrack", "--ctstate", "NEW", "-j", "LOG", "--log-prefix", "gavel-netout ")
				out = append(out, logged)
			}
			out = append(out, append(spec, "-j", "ACCEPT"))
		}
	}
	return out, nil
}
