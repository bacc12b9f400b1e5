// Package agent wires the stages: probes -> identity -> aggregation ->
// exporters. One goroutine owns identity and the flow table; the ring-buffer
// reader feeds it through a bounded queue, and while that is full the
// records wait in the kernel's ring.
package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/stratanet/strata/agent/config"
	"github.com/stratanet/strata/agent/dnsflow"
	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/agent/httpflow"
	"github.com/stratanet/strata/agent/route"
	"github.com/stratanet/strata/exporters/prom"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/identity/kube"
	"github.com/stratanet/strata/identity/process"
	dnsprobe "github.com/stratanet/strata/probes/dns"
	"github.com/stratanet/strata/probes/event"
	httpprobe "github.com/stratanet/strata/probes/http"
	"github.com/stratanet/strata/probes/kind"
	"github.com/stratanet/strata/probes/netns"
	"github.com/stratanet/strata/probes/ring"
	"github.com/stratanet/strata/probes/tcp"
)

// Errors the command maps to exit codes.
var (
	ErrPrivilege = errors.New("missing privilege")
	ErrKernel    = errors.New("kernel refused the probes")
	ErrUsage     = errors.New("unsupported setting")
)

// Run starts the agent and blocks until ctx ends.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	if err := checkPrivileges(); err != nil {
		return err
	}
	routes, err := route.New(cfg.HTTPRoutes) // checked with the config already
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}

	// Bind first: a taken port is the cheapest failure to report. Serve
	// from now on, so the kubelet's probes get an answer (alive, not ready)
	// while the probes load and the informers list.
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo())
	h := newHealth(kubeWanted(cfg))
	srv, err := prom.Listen(log.Named("metrics"), cfg.MetricsAddr, reg, h)
	if err != nil {
		return err
	}
	serving, stopServing := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serving) }()
	defer func() { stopServing(); <-served }()

	k, err := openKernel(cfg, routes, log)
	if err != nil {
		return err
	}
	defer k.close()
	h.loaded(k.modes, k.lost)

	// Stages, in the order data flows through them.
	// The host's /proc and setns answers come from a worker, off the loop.
	lookups := process.NewWorker(process.NewProcHost(), hostQueue)
	resolver := process.New(log.Named("identity"), lookups)
	// Know every namespace's addresses and every socket's owner before the
	// first event (here, where waiting is fine), so that a connection to a
	// local server is never named "world" for lack of it, nor one older
	// than the agent "unknown".
	// The host lists the namespaces once and keeps their paths for the
	// listings that follow.
	for _, ino := range lookups.Do(process.Lookup{Need: process.Namespaces}).All {
		resolver.Answer(lookups.Do(process.Lookup{Need: process.Addrs, Netns: ino}))
	}
	resolver.Answer(lookups.Do(process.Lookup{Need: process.Owners}))
	var id identity.Identifier = resolver
	var gone flow.GoneFunc
	var pods *procPods // Kubernetes mode: processes' pods, by their cgroups
	if kubeWanted(cfg) {
		kctx, stop := context.WithCancel(ctx)
		c, err := startKube(kctx, cfg, log.Named("kube"))
		if err != nil {
			stop()
			return err
		}
		defer c.Wait() // after stop: informers end with kctx
		defer stop()
		h.watchSync(c.Synced)
		hostNetns, err := nodeNetns(log)
		if err != nil {
			return err
		}
		pods = newProcPods(c, lookups, resolver.Stats())
		id = kube.Pairs{Host: resolver, Dir: c, HostNetns: hostNetns, Process: pods.pod, Clock: monoToWall(), NetnsOf: resolver.NetnsOf}
		gone = c.Gone
	}
	// Outside destinations: the name the client resolved, a CIDR name, world.
	id, names := dnsNaming(cfg, id)
	x, err := newExporters(cfg, log, reg)
	if err != nil {
		return err
	}
	opts := flowOptions(cfg)
	opts.Gone, opts.GoneGrace = gone, cfg.DeletedGrace
	if x.loki != nil {
		opts.Events = x.loki
	}
	table := flow.NewTable(log.Named("flow"), id, opts)
	var sink emit.Spans
	if x.tempo != nil {
		sink = x.tempo
	}
	requests := httpflow.New(table, routes, sink, monoToWall(), cfg.Cluster, httpOptions(cfg))
	requests.Gone, requests.GoneGrace = gone, cfg.DeletedGrace
	if x.loki != nil {
		requests.Events = x.loki
	}
	var queries *dnsflow.Table // nil when DNS is off or its probe refused
	if k.dns != nil {
		queries = dnsflow.New(table, names, dnsOptions(cfg), monoNow, monoToWall())
		if x.loki != nil {
			queries.Events = x.loki
		}
	}
	timed := newTimedCollectors() // strata_agent_collect_duration_seconds
	timed.add("flow", table)
	timed.add("http", requests)
	if queries != nil {
		timed.add("dns", queries)
	}

	st := &stages{resolver: resolver, table: table, requests: requests, queries: queries}
	// A namespace's first record waits for its addresses, and so does
	// every record after it (of any probe): see order.
	wait := func(r *event.Record) bool {
		if !r.IsTCP() {
			return resolver.Waiting()
		}
		return resolver.Wait(&r.TCP)
	}
	ord := newOrder(wait, st.apply, resolver.Release)
	sweeps := &sweepStats{}
	reg.MustRegister(timed, h, hostCollector{resolver.Stats(), &ord.holding, sweeps},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	g, ctx := errgroup.WithContext(ctx)
	records, err := k.read(ctx, g, h, cfg.EventQueue)
	if err != nil {
		return err
	}
	g.Go(func() error { lookups.Run(ctx); return nil })
	// The one goroutine that owns identity, the flow table, HTTP and DNS
	// pairing; records come in the kernel's order, so an answer is learned
	// before the connect that follows it. It never blocks on the host: what
	// /proc and setns answer comes back here as events, in its turn.
	g.Go(func() error {
		tick := time.NewTicker(time.Second) // idle HTTP sockets are forgotten
		defer tick.Stop()
		h.turn()
		for {
			select {
			case batch, ok := <-records:
				if !ok {
					return nil
				}
				h.count(batch)
				ord.push(batch, time.Now())
				recycle(batch)
			case a := <-lookups.Answers():
				resolver.Answer(a) // counts every answer
				if a.Need == process.Cgroup && pods != nil {
					pods.answer(a) // the pair waiting for it is named at the next tick
				}
				ord.resume(time.Now())
			case <-tick.C:
				h.turn() // /healthz: the loop is not stuck
				ord.expire(time.Now())
				// Each stage counts what waited for names (flow.Late),
				// asking the table; the table calls no stage back.
				requests.Tick()
				table.Tick()
				if queries != nil {
					queries.Tick()
				}
			}
		}
	})
	if k.tcp.CanSweep() {
		g.Go(func() error { sweep(ctx, log.Named("sweep"), k, table.Holds, cfg.SweepInterval, sweeps); return nil })
	}
	// Each exporter in its own goroutine, behind its own queue.
	x.run(ctx, g)
	g.Go(func() error {
		select {
		case <-ctx.Done():
			return nil
		case err := <-served: // only a broken listener ends it early
			served <- err // for the deferred wait
			return fmt.Errorf("metrics server: %w", err)
		}
	})

	log.Info("agent running", zap.String("metrics", fmt.Sprintf("http://%s/metrics", srv.Addr())),
		zap.Stringer("sweep_interval", cfg.SweepInterval), zap.String("http", k.modes["http"]), zap.String("dns", k.modes["dns"]))
	return g.Wait()
}

func flowOptions(cfg config.Config) flow.Options {
	opts := flow.DefaultOptions()
	opts.MaxConns = cfg.MaxSockets
	opts.Budgets.Flows = cfg.MaxSeries
	for label, n := range cfg.LabelBudgets {
		opts.Budgets.Labels[label] = n
	}
	return opts
}

func httpOptions(cfg config.Config) httpflow.Options {
	return httpflow.Options{MaxSockets: cfg.HTTPMaxSockets, MaxPending: cfg.HTTPMaxPending,
		MaxSeries: cfg.HTTPMaxSeries, MaxRoutes: cfg.HTTPMaxRoutes}
}

// kernel is every loaded probe and the mode each runs in.
type kernel struct {
	tcp   *tcp.Probes
	http  *httpprobe.Probe // nil when off or refused
	dns   *dnsprobe.Probe  // nil when off or refused
	modes map[string]string
}

// hostQueue bounds the namespace listings waiting for the host worker;
// beyond it they are refused and counted (strata_agent_host_lookups_total).
const hostQueue = 1024

// poll is how often the reader drains a busy ring. An idle ring is drained
// less often, down to every 8 polls (probes/ring), so a burst after quiet
// waits at most 80 ms: an 8 MiB ring absorbs 100 MB/s of records meanwhile
// (HTTP with spans at 60k requests/s is about 30 MB/s).
const poll = 10 * time.Millisecond

func openKernel(cfg config.Config, routes *route.Templater, log *zap.Logger) (*kernel, error) {
	memlock := liftMemlock()
	if memlock != nil {
		log.Info("cannot lift RLIMIT_MEMLOCK; kernels before 5.11 may refuse the probes' maps", zap.Error(memlock))
	}
	t, err := tcp.Open(log.Named("probes"), tcp.Options{RingBytes: uint32(cfg.RingBuffer)})
	if err != nil {
		return nil, loadError(err, memlock)
	}
	k := &kernel{tcp: t, modes: map[string]string{"http": "disabled", "dns": "disabled"}}
	for _, s := range t.Status() {
		k.modes[s.Probe] = s.Mode
	}
	if cfg.HTTP == "on" {
		// Exchanges are counted in the kernel unless each must become a
		// span; the counts of live sockets come with the sweep.
		o := httpprobe.Options{Tally: cfg.OTLPEndpoint == "" && t.CanSweep(), CollapseIDs: !routes.NamesIDs()}
		if k.http, err = httpprobe.Open(t.Events(), o); err != nil {
			log.Warn("probe disabled; the agent continues without it", zap.String("probe", "http"), zap.Error(err))
		} else {
			k.modes["http"] = string(k.http.Mode())
			if why := k.http.FellBack(); why != nil {
				log.Warn("HTTP capture falls back to the syscall tracepoints, which every read and write on the node pays for",
					zap.String("probe", "http"), zap.Error(why))
			}
		}
	}
	if cfg.DNS == "on" {
		var fellBack error
		choice := dnsprobe.Auto
		if k.http != nil && k.http.Mode() == httpprobe.Packet {
			choice = dnsprobe.PreferPackets // behind the packet hook HTTP pays
		}
		if k.dns, fellBack, err = dnsprobe.Open(t.Events(), choice); err != nil {
			log.Warn("probe disabled; the agent continues without it", zap.String("probe", "dns"), zap.Error(err))
		} else {
			k.modes["dns"] = k.dns.Mode()
		}
		switch {
		case fellBack == nil || k.dns == nil:
		case choice == dnsprobe.PreferPackets && k.dns.Mode() == dnsprobe.ModeTracepoint:
			// Its own hooks rather than HTTP's packets: a cost, not a gap.
			log.Info("DNS capture could not share HTTP capture's packet programs",
				zap.String("probe", "dns"), zap.String("mode", k.dns.Mode()), zap.Error(fellBack))
		case k.dns.Mode() == dnsprobe.ModeSyscall:
			log.Warn("DNS capture falls back to the syscall tracepoints, which every read and write on the node pays for",
				zap.String("probe", "dns"), zap.Error(fellBack))
		default:
			log.Info("DNS capture falls back to the packets, which every packet on the node pays for",
				zap.String("probe", "dns"), zap.String("mode", k.dns.Mode()), zap.Error(fellBack))
		}
	}
	return k, nil
}

func (k *kernel) lost() map[string]uint64 {
	lost := k.tcp.Lost()
	if k.http != nil {
		lost["http"] = k.http.Lost()
	}
	if k.dns != nil {
		lost["dns"] = k.dns.Lost()
	}
	return lost
}

// read starts the ring-buffer reader. While the queue to the event loop is
// full it waits, and the records wait in the kernel's ring: behind a busy
// loop both buffers fill before anything is lost, and what the ring then
// refuses the kernel counts (stage ringbuf). Dropping at a full queue
// instead left the ring empty (its room unused) and spent the starved
// CPU decoding records only to throw them away.
func (k *kernel) read(ctx context.Context, g *errgroup.Group, h *health, queue int) (<-chan []event.Record, error) {
	r, err := ring.Open(k.tcp.Events(), poll, decode, newBatch)
	if err != nil {
		return nil, err
	}
	records := make(chan []event.Record, max(1, queue/maxBatch))
	g.Go(func() error {
		defer close(records)
		err := r.Run(ctx, forward(ctx, records), func(error) { h.decodeLost.Add(1) })
		if ctx.Err() == nil {
			h.readerStopped(err) // /healthz fails: nothing reads the kernel's records any more
		}
		return err
	})
	return records, nil
}

// forward hands each batch to the loop, waiting while the queue is full
// (the ring buffer holds what comes meanwhile).
func forward(ctx context.Context, records chan<- []event.Record) func([]event.Record) {
	return func(batch []event.Record) {
		select {
		case records <- batch:
		case <-ctx.Done():
			recycle(batch)
		}
	}
}

// decode dispatches on the kind every record starts with.
func decode(raw []byte) (event.Record, error) {
	var k uint8
	if len(raw) > 0 {
		k = raw[0]
	}
	switch {
	case kind.IsDNS(k):
		e, err := dnsprobe.Decode(raw)
		return event.Record{DNS: &e}, err
	case k == kind.HTTPTally:
		c, err := httpprobe.DecodeTally(raw)
		return event.Record{Tally: c}, err
	case kind.IsHTTP(k):
		e, err := httpprobe.Decode(raw)
		return event.Record{HTTP: &e}, err
	}
	e, err := tcp.Decode(raw) // refuses what is no TCP record either
	return event.Record{TCP: e}, err
}

const maxBatch = 512

var batches = sync.Pool{New: func() any { b := make([]event.Record, 0, maxBatch); return &b }}

func newBatch() []event.Record { return (*batches.Get().(*[]event.Record))[:0] }

// recycle returns a batch for reuse once the loop is done with it.
func recycle(b []event.Record) {
	if cap(b) == maxBatch {
		clear(b) // let go of the strings
		batches.Put(&b)
	}
}

func (k *kernel) close() {
	if k.http != nil {
		k.http.Close()
	}
	if k.dns != nil {
		k.dns.Close()
	}
	k.tcp.Close()
}

// sweep reads every network namespace's sockets each interval, starting
// now: their TCP counters, and what the HTTP probe counted on them where
// the flow table holds live sockets (held); it asks no later stage.
func sweep(ctx context.Context, log *zap.Logger, k *kernel, held func(netns uint32) bool, every time.Duration, st *sweepStats) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for gen := uint32(1); ; gen++ {
		start := time.Now()
		all, err := netns.Enumerate()
		if err != nil {
			log.Warn("cannot list network namespaces", zap.Error(err))
		}
		for ino, path := range all {
			err := netns.Do(path, func() error {
				var counted error
				if k.http != nil && held(ino) {
					counted = k.http.Tally()
				}
				return errors.Join(k.tcp.Sweep(gen), counted)
			})
			if err != nil {
				// Namespaces vanish between listing and entering; that is normal.
				log.Debug("sweep skipped a namespace", zap.Uint32("netns", ino), zap.Error(err))
			}
		}
		st.seconds.Store(uint64(time.Since(start).Nanoseconds()))
		st.namespaces.Store(uint64(len(all)))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// nodeNetns is the node's own network namespace: PID 1's, which the agent
// sees with the DaemonSet's hostPID. Its own may be a pod's (hostNetwork
// off), and then every host-network process would be taken for a pod.
// Where PID 1's cannot be read although the agent holds CAP_SYS_PTRACE (a
// sandbox's init may hide it), its own is taken, with a warning: right
// when it runs on the host network, as the DaemonSet does.
func nodeNetns(log *zap.Logger) (uint32, error) {
	ino, err := netns.Inode("/proc/1/ns/net")
	if err == nil {
		return ino, nil
	}
	own, ownErr := netns.Inode("/proc/self/ns/net")
	if ownErr != nil {
		return 0, fmt.Errorf("%w: the node's network namespace (/proc/1/ns/net; the pod needs hostPID and CAP_SYS_PTRACE): %w", ErrPrivilege, err)
	}
	log.Warn("cannot read PID 1's network namespace; taking the agent's own as the node's (right only with hostNetwork)",
		zap.Error(err), zap.Uint32("netns", own))
	return own, nil
}

// monoToWall converts the kernel's CLOCK_MONOTONIC nanoseconds (what BPF
// stamps records with) into wall-clock time.
func monoToWall() func(uint64) time.Time {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	boot := time.Now().Add(-time.Duration(ts.Nano()))
	return func(mono uint64) time.Time { return boot.Add(time.Duration(mono)) }
}
