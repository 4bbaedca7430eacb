// Package gossip is gavel's cell discovery: reps, the auctioneer and the
// converger join one memberlist (SWIM) pool, and each node announces what
// it is in its metadata. The auctioneer takes its cell list from its own
// view of the pool, so an auction reads no store; a cell that dies drops out
// within seconds. The pool is for speed only: etcd presence stays the truth
// that destructive decisions (the converger's) rest on.
package gossip

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Roles a node can announce.
const (
	RoleCell       = "cell"
	RoleAuctioneer = "auctioneer"
	RoleConverger  = "converger"
	RoleObserver   = "observer"
)

// Meta is what a node announces about itself.
type Meta struct {
	Role       string `json:"role"`
	CellID     string `json:"cell_id,omitempty"`
	RepAddress string `json:"rep_address,omitempty"`
	Zone       string `json:"zone,omitempty"`
}

// Defaults for Config.
const (
	DefaultBindAddress = "127.0.0.1"
	// DefaultRejoinInterval is how often a node retries seeds it is not
	// connected to, so a pool split by a restart heals by itself.
	DefaultRejoinInterval = 10 * time.Second
)

// Config configures one node.
type Config struct {
	// Name is the node's unique name in the pool (a rep uses its cell id).
	Name string
	// BindAddress and BindPort are where the node listens (UDP and TCP);
	// port 0 lets the kernel choose.
	BindAddress string
	BindPort    int
	// AdvertiseAddress is the address other nodes reach this one at
	// (default: BindAddress). Left to itself, memberlist would advertise
	// the host's private address.
	AdvertiseAddress string
	// Join lists host:port seeds; a node with none starts a pool alone.
	Join []string
	// SecretKey, when set (16, 24 or 32 bytes), encrypts the gossip.
	SecretKey []byte
	// Local uses memberlist's loopback timings (failure detection in about
	// a second) instead of the LAN ones; for tests and `gavel dev`.
	Local bool
	// RejoinInterval: see DefaultRejoinInterval.
	RejoinInterval time.Duration
	Meta           Meta
	Logger         *slog.Logger

	// tune adjusts memberlist's settings last (tests only).
	tune func(*memberlist.Config)
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("gossip name: must be set")
	case c.Meta.Role == "":
		return errors.New("gossip role: must be set")
	case c.Meta.Role == RoleCell && (c.Meta.CellID == "" || c.Meta.RepAddress == ""):
		return errors.New("gossip meta: a cell must announce its cell id and rep address")
	case c.BindPort < 0 || c.BindPort > 65535:
		return fmt.Errorf("gossip bind_port: %d is not a port", c.BindPort)
	}
	if c.BindAddress != "" && net.ParseIP(c.BindAddress) == nil {
		return fmt.Errorf("gossip bind_address: %q is not an IP address", c.BindAddress)
	}
	if c.AdvertiseAddress != "" && net.ParseIP(c.AdvertiseAddress) == nil {
		return fmt.Errorf("gossip advertise_address: %q is not an IP address", c.AdvertiseAddress)
	}
	if n := len(c.SecretKey); n != 0 && n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("gossip secret_key: must be 16, 24 or 32 bytes, is %d", n)
	}
	for _, s := range c.Join {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("gossip join: %q: %w", s, err)
		}
	}
	if b, _ := json.Marshal(c.Meta); len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("gossip meta: %d bytes, at most %d", len(b), memberlist.MetaMaxSize)
	}
	return nil
}

// Event says a node joined, changed or left (died or left gracefully).
type Event struct {
	Kind EventKind
	Name string
	Meta Meta
}

// EventKind is what happened to a node.
type EventKind int

// The kinds of Event.
const (
	NodeJoined EventKind = iota
	NodeUpdated
	NodeLeft
)

// Pool is one node's membership in the pool.
type Pool struct {
	cfg    Config
	ml     *memberlist.Memberlist
	logger *slog.Logger
	meta   []byte

	mu   sync.Mutex // guards subs
	subs []chan Event

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// Join starts the node and joins the seeds. An unreachable seed is not an
// error: the node keeps retrying the seeds in the background, so start-up
// order between components does not matter.
func Join(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BindAddress == "" {
		cfg.BindAddress = DefaultBindAddress
	}
	if cfg.AdvertiseAddress == "" {
		cfg.AdvertiseAddress = cfg.BindAddress
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("gossip meta: %w", err)
	}
	p := &Pool{cfg: cfg, logger: logger.With("gossip_node", cfg.Name), meta: meta,
		stop: make(chan struct{}), done: make(chan struct{})}

	mc := memberlist.DefaultLANConfig()
	if cfg.Local {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddress
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddress
	mc.AdvertisePort = cfg.BindPort
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = delegate{p}
	mc.Events = events{p}
	mc.Logger = log.New(&logWriter{logger: p.logger}, "", 0)
	if cfg.tune != nil {
		cfg.tune(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: start node %s on %s:%d: %w", cfg.Name, cfg.BindAddress, cfg.BindPort, err)
	}
	p.ml = ml
	p.rejoin()
	go p.rejoinLoop()
	return p, nil
}

// Addr is the host:port other nodes can join this one at.
func (p *Pool) Addr() string {
	return p.ml.LocalNode().Address()
}

// Members returns the live nodes (this one included) and what they announce.
func (p *Pool) Members() []Event {
	var out []Event
	for _, n := range p.ml.Members() {
		if m, ok := p.decode(n); ok {
			out = append(out, Event{Kind: NodeJoined, Name: n.Name, Meta: m})
		}
	}
	return out
}

// Cells returns what every live cell announces, sorted by cell id.
func (p *Pool) Cells() []Meta {
	var out []Meta
	for _, m := range p.Members() {
		if m.Meta.Role == RoleCell {
			out = append(out, m.Meta)
		}
	}
	slices.SortFunc(out, func(a, b Meta) int { return strings.Compare(a.CellID, b.CellID) })
	return out
}

// Subscribe returns a channel of membership changes until ctx ends or the
// node leaves. A subscriber that falls behind by more than buffer events
// loses the oldest ones: membership is re-read with Members, never rebuilt
// from events alone.
func (p *Pool) Subscribe(ctx context.Context, buffer int) <-chan Event {
	ch := make(chan Event, max(buffer, 1))
	p.mu.Lock()
	p.subs = append(p.subs, ch)
	p.mu.Unlock()
	context.AfterFunc(ctx, func() { p.unsubscribe(ch) })
	return ch
}

func (p *Pool) unsubscribe(ch chan Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.subs, ch); i >= 0 {
		p.subs = slices.Delete(p.subs, i, i+1)
		close(ch)
	}
}

func (p *Pool) publish(kind EventKind, n *memberlist.Node) {
	m, ok := p.decode(n)
	if !ok {
		return
	}
	ev := Event{Kind: kind, Name: n.Name, Meta: m}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ch := range p.subs {
		select {
		case ch <- ev:
			continue
		default:
		}
		// Full: drop the oldest to make room. Only publish sends, under
		// the lock, so the send below cannot block.
		select {
		case <-ch:
		default:
		}
		ch <- ev
	}
}

func (p *Pool) decode(n *memberlist.Node) (Meta, bool) {
	var m Meta
	if err := json.Unmarshal(n.Meta, &m); err != nil {
		p.logger.Warn("gossip node with unreadable metadata", "node", n.Name, "error", err)
		return Meta{}, false
	}
	return m, true
}

// leaveNotices is how many live members a leaving node tells directly.
const leaveNotices = 3

// Leave tells the pool this node is going (others drop it at once instead
// of after a failure timeout) and stops it. It waits at most timeout for
// the gossiped leave and as long again for the direct notices.
//
// memberlist gossips a leave over UDP a few times only, to random members
// that include the recently dead: when a neighbour has just died, every
// copy can go to it and the live members learn of the leave only by
// failure detection, many seconds later. So the node also pushes its state
// (in which it has left) over TCP to a few live members, seeds first;
// they re-gossip the leave to the rest.
func (p *Pool) Leave(timeout time.Duration) error {
	if err := p.halt(); err != nil {
		return err
	}
	peers := p.leaveTargets(leaveNotices)
	gossiped := p.ml.Leave(timeout)
	told := p.tell(peers, timeout)
	err := p.ml.Shutdown()
	p.closeSubscribers()
	if err != nil {
		return err
	}
	if gossiped != nil && told == 0 && len(peers) > 0 {
		return fmt.Errorf("gossip leave: %w, and no member could be told directly", gossiped)
	}
	return nil
}

// leaveTargets picks up to n live members other than this node, the
// configured seeds first.
func (p *Pool) leaveTargets(n int) []string {
	seeds := map[string]bool{}
	for _, s := range p.cfg.Join {
		seeds[s] = true
	}
	self := p.ml.LocalNode().Name
	var first, rest []string
	for _, m := range p.ml.Members() {
		if m.Name == self {
			continue
		}
		addr := m.Address()
		if seeds[addr] {
			first = append(first, addr)
		} else {
			rest = append(rest, addr)
		}
	}
	mrand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	all := append(first, rest...)
	return all[:min(n, len(all))]
}

// tell pushes this node's state to each peer at once and reports how many
// took it within timeout. Called after ml.Leave, the state says the node
// has left; memberlist ignores what comes back about this node then.
func (p *Pool) tell(peers []string, timeout time.Duration) int {
	if len(peers) == 0 {
		return 0
	}
	results := make(chan bool, len(peers))
	for _, addr := range peers {
		go func() {
			n, err := p.ml.Join([]string{addr})
			if err != nil {
				p.logger.Debug("gossip leave notice failed", "peer", addr, "error", err)
			}
			results <- n > 0
		}()
	}
	told := 0
	deadline := time.After(timeout)
	for range peers {
		select {
		case ok := <-results:
			if ok {
				told++
			}
		case <-deadline:
			return told
		}
	}
	return told
}

// Shutdown stops the node without telling the pool, as a crash would: the
// others find out by failure detection.
func (p *Pool) Shutdown() error {
	if err := p.halt(); err != nil {
		return err
	}
	err := p.ml.Shutdown()
	p.closeSubscribers()
	return err
}

var errStopped = errors.New("gossip: node already stopped")

// halt stops the rejoin loop, once.
func (p *Pool) halt() error {
	err := errStopped
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		err = nil
	})
	return err
}

func (p *Pool) closeSubscribers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ch := range p.subs {
		close(ch)
	}
	p.subs = nil
}

// rejoin tries every seed that is not a live member now.
func (p *Pool) rejoin() {
	live := map[string]bool{p.Addr(): true}
	for _, n := range p.ml.Members() {
		live[n.Address()] = true
	}
	var missing []string
	for _, s := range p.cfg.Join {
		if !live[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return
	}
	if _, err := p.ml.Join(missing); err != nil {
		p.logger.Debug("gossip seeds unreachable; retrying", "seeds", missing, "error", err)
	}
}

func (p *Pool) rejoinLoop() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.rejoin()
		}
	}
}

// delegate announces the node's metadata; the pool carries no other state.
type delegate struct{ p *Pool }

func (d delegate) NodeMeta(limit int) []byte                  { return d.p.meta }
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ p *Pool }

func (e events) NotifyJoin(n *memberlist.Node)   { e.p.publish(NodeJoined, n) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.p.publish(NodeLeft, n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.p.publish(NodeUpdated, n) }

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records at the matching level.
type logWriter struct{ logger *slog.Logger }

var logLevels = []struct {
	prefix string
	level  slog.Level
}{{"[ERR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}}

func (w *logWriter) Write(b []byte) (int, error) {
	line := bytes.TrimSpace(b)
	level := slog.LevelDebug
	for _, l := range logLevels {
		if rest, ok := bytes.CutPrefix(line, []byte(l.prefix)); ok {
			level, line = l.level, bytes.TrimSpace(rest)
			break
		}
	}
	w.logger.Log(context.Background(), level, string(line), "component", "memberlist")
	return len(b), nil
}

// ReadKeyFile reads a gossip key: the base64 of 16, 24 or 32 random bytes
// on one line (what `gavel certs` writes as gossip.key).
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("gossip key %s: not base64: %w", path, err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip key %s: %d bytes, want 16, 24 or 32", path, n)
	}
	return key, nil
}

// WriteKeyFile creates a gossip key file at path (mode 0600) unless one is
// there already, and reports whether it created it.
func WriteKeyFile(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		_, err := ReadKeyFile(path)
		return false, err
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("gossip key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return false, fmt.Errorf("gossip key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("gossip key: %w", err)
	}
	if _, err := fmt.Fprintln(f, base64.StdEncoding.EncodeToString(key)); err != nil {
		f.Close()
		return false, fmt.Errorf("gossip key: %w", err)
	}
	return true, f.Close()
}
