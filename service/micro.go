package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// serviceName is the micro service's name, the same on every replica.
const serviceName = "nts"

// stopGrace is how long stop lets requests in flight finish before it
// cancels them.
const stopGrace = 5 * time.Second

// api is the micro service of one replica: the endpoints of DESIGN.md
// "Endpoints" over the index's view and the tiers. Safe for concurrent use.
//
// micro calls an endpoint's handler for one request at a time. A handler
// checks the request (subject, body, and whatever the index's in-memory
// view answers alone) and replies at once to what needs no I/O; a request
// that reads tiers or JetStream is handed to a worker, one of at most
// cfg.Service.MaxConcurrent, and the handler returns. When all workers are
// busy the request is answered 503 at once instead of queued.
//
// micro's own stats count every request and the errors answered by the
// handler (req.Error); its processing time covers the handler only. A
// worker replies on the request's reply subject itself, so the errors it
// answers and the time it spends are counted by the endpoint's own
// counters, which the STATS reply carries in each endpoint's data.
type api struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	ix   *index.Index
	ctrl *tier.Controller
	arch *archiver
	cfg  Config
	id   string
	log  *slog.Logger
	svc  micro.Service

	ctx    context.Context // root of every request's context
	cancel context.CancelFunc
	jobs   chan work // hands a request to an idle worker; closed by stop

	mu      sync.Mutex
	closed  bool
	started int // workers running: they stay for the next request
	busy    int // workers running a request
	workers sync.WaitGroup
	eps     map[string]*endpointStats
	stopped sync.Once
}

// work is one request handed to a worker.
type work struct {
	st    *endpointStats
	reply string
	j     job
}

// endpointStats counts what micro does not see of one endpoint: the
// workers' replies. Safe for concurrent use.
type endpointStats struct {
	InFlight    atomic.Int64
	Shed        atomic.Int64
	WorkerErrs  atomic.Int64
	WorkerNanos atomic.Int64
	Done        atomic.Int64
	lastErr     atomic.Pointer[string]
}

// endpointData is the data of one endpoint in micro's STATS reply.
type endpointData struct {
	InFlight        int64         `json:"in_flight"`
	Shed            int64         `json:"shed"`
	WorkerRequests  int64         `json:"worker_requests"`
	WorkerErrors    int64         `json:"worker_errors"`
	LastWorkerError string        `json:"last_worker_error,omitempty"`
	WorkerTime      time.Duration `json:"worker_time"`
	// Replica is set on the admin endpoints: this replica's tiers and
	// streams.
	Replica *Status `json:"replica,omitempty"`
}

// newAPI registers the micro service (without endpoints yet) and returns
// it; its instance id is api.svc.Info().ID.
func newAPI(nc *nats.Conn, cfg Config, log *slog.Logger) (*api, error) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &api{
		nc: nc, cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		jobs: make(chan work),
		eps:  map[string]*endpointStats{},
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:         serviceName,
		Version:      Version(),
		Description:  "nts: archived JetStream messages served from tiered storage",
		Metadata:     map[string]string{"prefix": cfg.Service.Prefix},
		QueueGroup:   cfg.Service.QueueGroup,
		StatsHandler: func(ep *micro.Endpoint) any { return a.stats(ep) },
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("micro service: %w", err)
	}
	a.svc = svc
	return a, nil
}

// instanceID returns the micro service's instance id.
func (a *api) instanceID() string { return a.svc.Info().ID }

// start registers the endpoints; a.id and the other parts must be set.
func (a *api) start() error {
	if a.id == "" || strings.ContainsAny(a.id, " .*>\t\r\n") {
		return fmt.Errorf("%w: service.instance_id: %q is not a subject token", ErrConfig, a.id)
	}
	g := a.svc.AddGroup(a.cfg.Service.Prefix)
	for _, e := range a.endpoints() {
		opts := []micro.EndpointOpt{
			micro.WithEndpointSubject(e.subject),
			micro.WithEndpointMetadata(map[string]string{"request": e.request, "reply": e.reply}),
		}
		if e.noQueue {
			opts = append(opts, micro.WithEndpointQueueGroupDisabled())
		}
		st := &endpointStats{}
		a.mu.Lock()
		a.eps[e.name] = st
		a.mu.Unlock()
		if err := g.AddEndpoint(e.name, a.handler(st, e.fn), opts...); err != nil {
			return fmt.Errorf("micro endpoint %s: %w", e.name, err)
		}
	}
	return nil
}

// stats is micro's StatsHandler: each endpoint's worker counters.
func (a *api) stats(ep *micro.Endpoint) any {
	a.mu.Lock()
	st := a.eps[ep.Name]
	a.mu.Unlock()
	if st == nil {
		return nil
	}
	d := endpointData{
		InFlight: st.InFlight.Load(), Shed: st.Shed.Load(), WorkerRequests: st.Done.Load(),
		WorkerErrors: st.WorkerErrs.Load(), WorkerTime: time.Duration(st.WorkerNanos.Load()),
	}
	if p := st.lastErr.Load(); p != nil {
		d.LastWorkerError = *p
	}
	if strings.HasPrefix(ep.Name, "admin-status") { // the replica's status once per STATS reply (and once per instance subject)
		s := a.status()
		d.Replica = &s
	}
	return d
}

// stop stops the micro service (draining its endpoints), lets the workers
// finish for up to stopGrace, then cancels them and waits. Idempotent.
func (a *api) stop() {
	a.stopped.Do(func() {
		if err := a.svc.Stop(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			a.log.Warn("stopping the micro service", "err", err)
		}
		a.mu.Lock()
		if !a.closed {
			a.closed = true
			close(a.jobs)
		}
		a.mu.Unlock()
		done := make(chan struct{})
		go func() {
			a.workers.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(stopGrace):
			a.cancel()
			<-done
		}
		a.cancel()
	})
}

// job is the part of a request a worker runs. It replies on the request's
// reply subject itself; an error it returns is answered as a micro error.
type job func(ctx context.Context, reply string) error

// prepareFunc checks a request in the handler. It returns the job to run in
// a worker, or nil when it has answered the request itself; an error is
// answered with req.Error.
type prepareFunc func(req micro.Request) (job, error)

// handler turns a prepareFunc into a micro handler.
func (a *api) handler(st *endpointStats, prepare prepareFunc) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		j, err := prepare(req)
		if err == nil && j != nil {
			err = a.dispatch(st, req.Reply(), j)
		}
		if err != nil {
			code, desc := errorCode(err)
			if rerr := req.Error(code, desc, nil); rerr != nil {
				a.log.Debug("error reply not sent", "subject", req.Subject(), "err", rerr)
			}
		}
	})
}

// dispatch runs j in a worker, or returns an error wrapping ErrOverloaded
// when every worker is busy or the service is stopping. Workers are started
// as the requests in progress grow, up to cfg.Service.MaxConcurrent, and
// then stay for the next requests until stop: a request reuses a worker's
// goroutine (and the stack it has grown) rather than starting its own.
func (a *api) dispatch(st *endpointStats, reply string, j job) error {
	if reply == "" {
		return nil // no one to answer
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("%w: the replica is stopping", ErrOverloaded)
	}
	if a.busy >= a.cfg.Service.MaxConcurrent {
		st.Shed.Add(1)
		return fmt.Errorf("%w: %d requests in progress, the replica's limit", ErrOverloaded, a.busy)
	}
	st.InFlight.Add(1)
	w := work{st: st, reply: reply, j: j}
	if a.busy == a.started {
		a.busy++
		a.started++
		a.workers.Add(1)
		go a.worker(w)
		return nil
	}
	// A worker is idle: it has counted itself out of busy (under a.mu)
	// and takes the next request without a.mu.
	a.busy++
	a.jobs <- w
	return nil
}

// worker serves w, then each request handed to it, until stop closes
// a.jobs.
func (a *api) worker(w work) {
	defer a.workers.Done()
	for ok := true; ok; w, ok = <-a.jobs {
		a.serve(w)
		a.mu.Lock()
		a.busy--
		a.mu.Unlock()
	}
}

// serve runs one request's job under the request timeout, counts it, and
// answers its error.
func (a *api) serve(w work) {
	st := w.st
	defer st.InFlight.Add(-1)
	start := time.Now()
	ctx, cancel := context.WithTimeout(a.ctx, time.Duration(a.cfg.Service.RequestTimeout))
	err := a.run(ctx, w.j, w.reply)
	cancel()
	st.Done.Add(1)
	st.WorkerNanos.Add(int64(time.Since(start)))
	if err != nil {
		st.WorkerErrs.Add(1)
		s := err.Error()
		st.lastErr.Store(&s)
		if perr := a.nc.PublishMsg(withSubject(errorReply(err), w.reply)); perr != nil {
			a.log.Debug("error reply not sent", "reply", w.reply, "err", perr)
		}
	}
}

// run calls j, turning a panic into an error so that no input brings the
// replica down.
func (a *api) run(ctx context.Context, j job, reply string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("request handler panicked", "panic", r)
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return j(ctx, reply)
}

// withSubject sets m's subject and returns m.
func withSubject(m *nats.Msg, subject string) *nats.Msg {
	m.Subject = subject
	return m
}
