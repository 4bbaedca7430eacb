// Package db is the BBS's store on etcd v3: the key layout, the encoding of
// records, and every state change as an etcd transaction guarded by the
// ModRevision of the rows it read. Each mutation returns the rows before and
// after it so callers (and the event stream, which reads the same pairs from
// the etcd watch) never disagree with what was stored.
package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// maxTxnOps is etcd's default limit on the operations of one transaction
// (--max-txn-ops); batches stay at or under it.
const maxTxnOps = 128

// maxAttempts bounds the read-modify-write retries of one call under
// contention. Each retry re-evaluates the domain rule against the value the
// failed transaction read back, so a lost race ends in a rule refusal (for
// example CannotBeClaimed) long before this limit in practice.
const maxAttempts = 16

// Config holds the store's knobs; the zero value gives the defaults.
type Config struct {
	// Prefix is the etcd key prefix (DefaultPrefix when empty).
	Prefix string
	// Now is the clock (time.Now when nil); tests replace it.
	Now func() time.Time
	// Restart is the crash restart policy (Diego's defaults when zero).
	Restart models.RestartCalculator
	// MaxTaskRetries is how many rejections a task survives (3 when zero).
	MaxTaskRetries int32
	// Logger (slog.Default when nil).
	Logger *slog.Logger
	// Registerer takes the store's metrics (none registered when nil).
	Registerer prometheus.Registerer
}

// Store is the etcd-backed BBS store. It is safe for concurrent use, and
// several Stores (in several BBS processes) may share one etcd: every write
// is guarded, so the cache below only saves reads, never decides an outcome.
type Store struct {
	client         *clientv3.Client
	keys           Keys
	now            func() time.Time
	restart        models.RestartCalculator
	maxTaskRetries int32
	logger         *slog.Logger

	// actuals caches ActualLRP rows with their ModRevision, filled by this
	// store's own reads and writes. A transition uses the cached revision as
	// its guard, saving the read round trip; when another writer got there
	// first the guard fails, the transaction's else-branch reads the current
	// row back, and the rule is applied again.
	actuals *rowCache

	// batch commits guarded transactions in groups (see batch.go).
	batch *batcher
}

// New returns a store over client.
func New(client *clientv3.Client, cfg Config) *Store {
	s := &Store{
		client:         client,
		keys:           NewKeys(cfg.Prefix),
		now:            cfg.Now,
		restart:        cfg.Restart,
		maxTaskRetries: cfg.MaxTaskRetries,
		logger:         cfg.Logger,
		actuals:        newRowCache(1 << 20),
		batch:          newBatcher(client, newBatchMetrics(cfg.Registerer)),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.restart == (models.RestartCalculator{}) {
		s.restart = models.NewDefaultRestartCalculator()
	}
	if s.maxTaskRetries == 0 {
		s.maxTaskRetries = 3
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s
}

// Keys returns the store's key layout.
func (s *Store) Keys() Keys { return s.keys }

// Client returns the etcd client the store writes through.
func (s *Store) Client() *clientv3.Client { return s.client }

func (s *Store) nowNanos() int64 { return s.now().UnixNano() }

func newEpoch() string { return uuid.NewString() }

// marshal encodes a record deterministically, so an unchanged record
// re-encodes to the same bytes.
func marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// Only invalid UTF-8 in a string field fails, and validation refuses
		// that before anything reaches the store.
		panic(fmt.Sprintf("marshal %T: %v", m, err))
	}
	return b
}

func decode[T any, PT interface {
	*T
	proto.Message
}](kv *mvccpb.KeyValue) (PT, error) {
	m := PT(new(T))
	if err := proto.Unmarshal(kv.Value, m); err != nil {
		return nil, models.NewError(models.TypeDeserialize, "decode %s: %v", kv.Key, err)
	}
	return m, nil
}

// errNoChange tells a mutate function's caller that the rule accepted the
// request but nothing needs writing (a heartbeat, a repeated claim).
var errNoChange = errors.New("no change")

// conflictErr is returned when a row kept changing under a call.
func conflictErr(key string) error {
	return models.NewError(models.TypeResourceConflict, "%s changed concurrently %d times; try again", key, maxAttempts)
}

type cachedRow struct {
	lrp *models.ActualLRP
	rev int64
}

// rowCache is a bounded map of decoded ActualLRP rows. Entries are never
// mutated: a transition clones the row before changing it.
type rowCache struct {
	mu   sync.Mutex
	max  int
	rows map[string]cachedRow
}

func newRowCache(max int) *rowCache {
	return &rowCache{max: max, rows: make(map[string]cachedRow)}
}

func (c *rowCache) get(key string) (cachedRow, bool) {
	c.mu.Lock()
	r, ok := c.rows[key]
	c.mu.Unlock()
	return r, ok
}

func (c *rowCache) put(key string, lrp *models.ActualLRP, rev int64) {
	c.mu.Lock()
	if len(c.rows) >= c.max {
		// Dropping everything is crude but keeps the cache bounded without
		// bookkeeping on the hot path; misses only cost a read.
		c.rows = make(map[string]cachedRow)
	}
	c.rows[key] = cachedRow{lrp: lrp, rev: rev}
	c.mu.Unlock()
}

func (c *rowCache) drop(key string) {
	c.mu.Lock()
	delete(c.rows, key)
	c.mu.Unlock()
}

// Revision returns etcd's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, s.keys.Prefix+"/", clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return resp.Header.Revision, nil
}
