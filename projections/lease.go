package projections

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// Exactly one runner per projection across every process: the runner's
// process holds the projection's lease, a PostgreSQL session advisory lock
// taken on a connection of its own that does nothing else. When the
// process dies its session ends and the lock with it; the other processes
// try the free leases every LeaseInterval and one of them takes over.
//
// Every process also holds a presence lock while it runs, so that each can
// count the live processes in pg_locks and take no more than its share of
// the projections (rounded up): started together or one after the other,
// the processes spread the projections between them, and a process above
// its share hands the extra ones back for the others to take. Should two
// runners of one projection still overlap (a session the server has not
// yet seen die), the checkpoint's optimistic check keeps it to one apply
// per batch.

// Advisory lock classes (the first int4 of the two-key form, which never
// collides with the event store's one-bigint keys): "fpl1" and "fpp1".
const (
	leaseClass    int32 = 0x66706c31
	presenceClass int32 = 0x66707031
)

const (
	// leaseStateSQL counts the live processes and lists the held leases.
	leaseStateSQL = `WITH l AS (
		SELECT classid::int8 AS class, objid::int8 AS key, pid FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 2 AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	)
	SELECT (SELECT count(DISTINCT pid) FROM l WHERE class = $1),
		(SELECT coalesce(array_agg(DISTINCT key), '{}') FROM l WHERE class = $2)`
	tryLockSQL = `SELECT pg_try_advisory_lock($1::int4, $2::int4)`
	unlockSQL  = `SELECT pg_advisory_unlock($1::int4, $2::int4)`
)

// active is a runner holding its lease.
type active struct {
	e      *entry
	stop   chan struct{}      // closed to stop at the next batch boundary
	cancel context.CancelFunc // cancels its work outright
	done   chan struct{}
}

// leases runs the lease loop of a started Client.
type leases struct {
	c        *Client
	conn     *pgx.Conn
	presence int32
	held     map[string]*active
}

func (l *leases) run(ctx context.Context, stop <-chan struct{}) {
	defer l.close(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if err := l.cycle(ctx); err != nil && ctx.Err() == nil {
			l.c.cfg.Logger.WarnContext(ctx, "projections: lease connection lost; stopping the local runners", "error", err)
			l.dropAll(ctx)
		}
		// Jitter, so that processes started together do not try the
		// same free lease at the same moment every time.
		d := l.c.cfg.LeaseInterval
		timer.Reset(d - time.Duration(rand.Int64N(int64(d)/5+1)))
	}
}

// cycle connects if needed, then takes free leases up to this process's
// share and hands back those above it.
func (l *leases) cycle(ctx context.Context) error {
	if l.conn == nil {
		if err := l.connect(ctx); err != nil {
			return err
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var processes int
	var heldKeys []int64
	if err := l.conn.QueryRow(qctx, leaseStateSQL, int64(presenceClass), int64(leaseClass)).Scan(&processes, &heldKeys); err != nil {
		return err
	}
	names := l.c.reg.order
	share := (len(names) + max(processes, 1) - 1) / max(processes, 1)
	mine := map[int64]bool{}
	for _, a := range l.held {
		mine[int64(a.e.key)] = true
	}
	taken := map[int64]bool{}
	for _, k := range heldKeys {
		taken[k] = true
	}
	// Above the share: hand back the extra leases (after their current
	// batch). Processes below it take them on their next cycle.
	for name := range l.held {
		if len(l.held) <= share {
			break
		}
		if err := l.drop(ctx, name); err != nil {
			return err
		}
	}
	free := make([]string, 0, len(names))
	for _, n := range names {
		if _, ok := l.held[n]; ok {
			continue
		}
		if k := int64(l.c.reg.entries[n].key); taken[k] && !mine[k] {
			continue
		}
		free = append(free, n)
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, n := range free {
		if len(l.held) >= share {
			break
		}
		e := l.c.reg.entries[n]
		var ok bool
		if err := l.conn.QueryRow(qctx, tryLockSQL, leaseClass, e.key).Scan(&ok); err != nil {
			return err
		}
		if ok {
			l.start(ctx, e)
		}
	}
	return nil
}

func (l *leases) connect(ctx context.Context) error {
	cfg := l.c.pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return err
	}
	// A presence key of its own; on the rare clash with another process's
	// random key, draw again.
	for range 10 {
		key := rand.Int32()
		var ok bool
		if err := conn.QueryRow(cctx, tryLockSQL, presenceClass, key).Scan(&ok); err != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return err
		}
		if ok {
			l.conn, l.presence = conn, key
			return nil
		}
	}
	_ = conn.Close(context.WithoutCancel(ctx))
	return errors.New("projections: no free presence key")
}

// start runs a runner for e, whose lease this process now holds.
func (l *leases) start(ctx context.Context, e *entry) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &active{e: e, stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	l.held[e.name] = a
	p := l.c.progress[e.name]
	p.setLocal(true)
	l.c.cfg.Metrics.leader(e.name, true)
	w := l.c.watcher
	w.acquire()
	go func() {
		defer close(a.done)
		defer w.release()
		if err := l.c.newRunner(e, w).run(rctx, a.stop, 0); err != nil {
			l.c.cfg.Logger.ErrorContext(rctx, "projections: runner ended", "projection", e.name, "error", err)
		}
	}()
}

// stopRunner stops a runner at its next batch boundary, or cancels its
// work when ctx ends first, and waits for it.
func stopRunner(ctx context.Context, a *active) {
	close(a.stop)
	select {
	case <-a.done:
	case <-ctx.Done():
		a.cancel()
		<-a.done
	}
	a.cancel()
}

// drop stops a runner and releases its lease.
func (l *leases) drop(ctx context.Context, name string) error {
	a := l.held[name]
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	stopRunner(sctx, a)
	cancel()
	delete(l.held, name)
	l.released(a.e.name)
	var ok bool
	return l.conn.QueryRow(ctx, unlockSQL, leaseClass, a.e.key).Scan(&ok)
}

func (l *leases) released(name string) {
	l.c.progress[name].setLocal(false)
	l.c.cfg.Metrics.leader(name, false)
}

// dropAll stops every runner and closes the lease connection, which ends
// the session and releases every lease at once.
func (l *leases) dropAll(ctx context.Context) {
	for name, a := range l.held {
		stopRunner(ctx, a)
		delete(l.held, name)
		l.released(name)
	}
	if l.conn != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = l.conn.Close(cctx)
		cancel()
		l.conn = nil
	}
}

func (l *leases) close(ctx context.Context) { l.dropAll(ctx) }
