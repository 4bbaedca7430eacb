package etcdembed

import (
	"fmt"
	"sync/atomic"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// serveStoppedMessage is what etcd logs, at error level, for every
// listener that stops serving, including the expected stops during a
// clean Close. Left alone, every test that closes a member would print
// four stack traces at the default "error" level.
const serveStoppedMessage = "setting up serving from embedded etcd failed."

// newZapLogger builds etcd's logger at level, writing to stderr (never a
// file in the working directory), which drops the serve-stopped noise
// once closing is set. Before that the same message means a listener
// really failed, so it is kept.
func newZapLogger(level string, closing *atomic.Bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("etcd log level %q: %w", level, err)
	}
	lg, err := logutil.CreateDefaultZapLogger(lvl)
	if err != nil {
		return nil, fmt.Errorf("etcd logger: %w", err)
	}
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return closeFilterCore{Core: c, closing: closing}
	})), nil
}

// closeFilterCore drops serveStoppedMessage entries while the member is
// being closed and passes everything else to the wrapped core.
type closeFilterCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c closeFilterCore) With(fields []zapcore.Field) zapcore.Core {
	return closeFilterCore{Core: c.Core.With(fields), closing: c.closing}
}

func (c closeFilterCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if ent.Message == serveStoppedMessage && c.closing.Load() {
		return ce
	}
	return c.Core.Check(ent, ce)
}
