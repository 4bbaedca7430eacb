package bbs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// CallbackConfig tunes task completion callbacks.
type CallbackConfig struct {
	// Attempts is how many times one callback is POSTed before the task is
	// handed back to convergence (default 10).
	Attempts int
	// InitialBackoff is the wait before the first retry; it doubles up to
	// MaxBackoff (defaults 250ms and 10s).
	InitialBackoff, MaxBackoff time.Duration
	// Timeout bounds one POST (default 10s).
	Timeout time.Duration
	// Workers caps callbacks in flight (default 100).
	Workers int
}

func (c *CallbackConfig) defaults() {
	if c.Attempts <= 0 {
		c.Attempts = 10
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 100
	}
}

// TaskCallbacks delivers completed tasks to their completion_callback_url,
// at least once: it marks the task RESOLVING (so one BBS owns the callback),
// POSTs the result, and deletes the task once the receiver answered. A
// receiver that is down or answers 503/504 is retried with backoff; when the
// attempts run out the task goes back to COMPLETED for convergence to kick
// again.
type TaskCallbacks struct {
	store  *db.Store
	client *http.Client
	cfg    CallbackConfig
	logger *slog.Logger
	sent   *prometheus.CounterVec

	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}
	wg     sync.WaitGroup
}

// NewTaskCallbacks returns a callback worker. Close stops it.
func NewTaskCallbacks(store *db.Store, cfg CallbackConfig, reg prometheus.Registerer, logger *slog.Logger) *TaskCallbacks {
	cfg.defaults()
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &TaskCallbacks{
		store:  store,
		client: &http.Client{Timeout: cfg.Timeout},
		cfg:    cfg,
		logger: logger,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_bbs_task_callbacks_total",
			Help: "Task completion callbacks by outcome (delivered, retried, abandoned).",
		}, []string{"outcome"}),
		ctx:    ctx,
		cancel: cancel,
		slots:  make(chan struct{}, cfg.Workers),
	}
	if reg != nil {
		reg.MustRegister(w.sent)
	}
	return w
}

// Submit delivers task's callback in the background.
func (w *TaskCallbacks) Submit(task *models.Task) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		select {
		case w.slots <- struct{}{}:
		case <-w.ctx.Done():
			return
		}
		defer func() { <-w.slots }()
		w.deliver(task.TaskGuid)
	}()
}

// Close stops delivering and waits for callbacks in flight to hand their
// tasks back.
func (w *TaskCallbacks) Close() {
	w.cancel()
	w.wg.Wait()
}

func (w *TaskCallbacks) deliver(guid string) {
	logger := w.logger.With("task_guid", guid)
	_, task, err := w.store.ResolvingTask(w.ctx, guid)
	if err != nil {
		// Someone else resolves it, or it is gone: nothing to do.
		logger.Debug("task callback not ours", "error", err)
		return
	}
	body, err := models.MarshalJSON(&models.TaskCallbackResponse{
		TaskGuid:      task.TaskGuid,
		Failed:        task.Failed,
		FailureReason: task.FailureReason,
		Result:        task.Result,
		Annotation:    task.GetTaskDefinition().GetAnnotation(),
		CreatedAt:     task.CreatedAt,
	})
	if err != nil {
		logger.Error("encode task callback", "error", err)
		return
	}
	url := task.GetTaskDefinition().GetCompletionCallbackUrl()
	backoff := w.cfg.InitialBackoff
	for attempt := 1; ; attempt++ {
		err = w.post(url, body)
		if err == nil {
			w.sent.WithLabelValues("delivered").Inc()
			if _, err := w.store.DeleteTask(context.WithoutCancel(w.ctx), guid); err != nil && !models.IsNotFound(err) {
				logger.Warn("delete task after callback", "error", err)
			}
			logger.Info("task callback delivered", "attempts", attempt)
			return
		}
		if attempt >= w.cfg.Attempts || w.ctx.Err() != nil {
			break
		}
		w.sent.WithLabelValues("retried").Inc()
		logger.Debug("task callback failed, retrying", "attempt", attempt, "error", err)
		select {
		case <-time.After(backoff):
		case <-w.ctx.Done():
		}
		backoff = min(backoff*2, w.cfg.MaxBackoff)
	}
	w.sent.WithLabelValues("abandoned").Inc()
	logger.Warn("task callback not delivered; handing the task back to convergence", "url", url, "error", err)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), requestTimeout)
	defer cancel()
	if _, _, uerr := w.store.UnresolveTask(ctx, guid); uerr != nil {
		logger.Warn("unresolve task", "error", uerr)
	}
}

// errRetryable marks a callback answer worth retrying.
var errRetryable = errors.New("receiver unavailable")

// post sends one callback. Transport errors and 503/504 are worth retrying;
// any other answer means the receiver has seen the result.
func (w *TaskCallbacks) post(url string, body []byte) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout {
		return fmt.Errorf("%w: %s", errRetryable, resp.Status)
	}
	return nil
}
