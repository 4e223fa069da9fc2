package projections

import (
	"context"
	"fmt"
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
// Every process also holds, on the same connection, a shared "candidate"
// lock on the key of each projection it registers, so that pg_locks says
// which processes can run which projection and how many each runs. A
// process takes a free lease when no other candidate of it runs fewer
// projections, and hands one back when another candidate runs at least
// two fewer: the projections spread evenly over the processes that
// register them, and a projection that only some processes register (two
// services on one database, a rolling deploy that adds one) is always
// taken by one of those. Each hand-back narrows the gap between two
// processes, so the spreading settles instead of passing a lease back and
// forth. Should two runners of one projection still overlap (a session
// the server has not yet seen die), the checkpoint's optimistic check
// keeps it to one apply per batch.

// Advisory lock classes (the first int4 of the two-key form, which never
// collides with the event store's one-bigint keys): "fpl1" and "fpc1".
const (
	leaseClass     int32 = 0x66706c31
	candidateClass int32 = 0x66706331
)

const (
	// leaseStateSQL lists the granted leases and candidacies, with the
	// server process that holds each.
	leaseStateSQL = `SELECT classid::int8, objid::int8, pid FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid::int8 IN ($1, $2)
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
	// candidateSQL takes the candidate locks of keys $2. Shared locks of a
	// class nobody locks exclusively: they are always granted.
	candidateSQL = `SELECT count(*) FILTER (WHERE pg_try_advisory_lock_shared($1::int4, k)) FROM unnest($2::int4[]) k`
	tryLockSQL   = `SELECT pg_try_advisory_lock($1::int4, $2::int4)`
	unlockSQL    = `SELECT pg_advisory_unlock($1::int4, $2::int4)`
)

// active is a runner holding its lease.
type active struct {
	e      *entry
	stop   chan struct{}      // closed to stop at the next batch boundary
	cancel context.CancelFunc // cancels its work outright
	done   chan struct{}
}

// leases runs the lease loop of a started Client. A lease is a key: the
// projections whose names hash to one key (see leaseKey) run together.
type leases struct {
	c    *Client
	conn *pgx.Conn
	pid  int64
	keys []int32             // the registry's keys, in registration order
	held map[int32][]*active // the leases this process holds, and their runners
}

func newLeases(c *Client) *leases {
	l := &leases{c: c, held: map[int32][]*active{}}
	seen := map[int32]bool{}
	for _, n := range c.reg.order {
		if k := c.reg.entries[n].key; !seen[k] {
			seen[k] = true
			l.keys = append(l.keys, k)
		}
	}
	return l
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

// leaseState is what pg_locks says of the leases and their candidates.
type leaseState struct {
	holder     map[int64]int64   // key → pid holding its lease
	load       map[int64]int     // pid → leases it holds
	candidates map[int64][]int64 // key → pids that can run it
}

// lightest returns the lowest load among key's candidates other than pid,
// and false when there is none.
func (st *leaseState) lightest(key int32, pid int64) (int, bool) {
	best, found := 0, false
	for _, c := range st.candidates[int64(key)] {
		if c == pid {
			continue
		}
		if n := st.load[c]; !found || n < best {
			best, found = n, true
		}
	}
	return best, found
}

// cycle connects if needed, hands back the leases another candidate with
// two fewer would take, and takes the free leases no lighter candidate
// would.
func (l *leases) cycle(ctx context.Context) error {
	if l.conn == nil {
		if err := l.connect(ctx); err != nil {
			return err
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st := leaseState{holder: map[int64]int64{}, load: map[int64]int{}, candidates: map[int64][]int64{}}
	rows, err := l.conn.Query(qctx, leaseStateSQL, int64(leaseClass), int64(candidateClass))
	if err != nil {
		return err
	}
	var class, key, pid int64
	_, err = pgx.ForEachRow(rows, []any{&class, &key, &pid}, func() error {
		if class == int64(leaseClass) {
			st.holder[key] = pid
			st.load[pid]++
		} else {
			st.candidates[key] = append(st.candidates[key], pid)
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.load[l.pid] = len(l.held)
	// Hand back, one lease at a time, while a candidate of it runs at
	// least two fewer; count it as that candidate's already.
	for _, k := range l.keys {
		if _, ok := l.held[k]; !ok {
			continue
		}
		if n, ok := st.lightest(k, l.pid); ok && n <= st.load[l.pid]-2 {
			if err := l.drop(ctx, k); err != nil {
				return err
			}
			st.load[l.pid]--
			for _, c := range st.candidates[int64(k)] {
				if c != l.pid && st.load[c] == n {
					st.load[c]++
					break
				}
			}
		}
	}
	free := make([]int32, 0, len(l.keys))
	for _, k := range l.keys {
		if _, taken := st.holder[int64(k)]; !taken {
			free = append(free, k)
		}
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, k := range free {
		if n, ok := st.lightest(k, l.pid); ok && n < st.load[l.pid] {
			continue // a lighter candidate takes it
		}
		var ok bool
		if err := l.conn.QueryRow(qctx, tryLockSQL, leaseClass, k).Scan(&ok); err != nil {
			return err
		}
		if ok {
			l.start(ctx, k)
			st.load[l.pid]++
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
	var n int
	if err := conn.QueryRow(cctx, candidateSQL, candidateClass, l.keys).Scan(&n); err != nil || n != len(l.keys) {
		_ = conn.Close(context.WithoutCancel(ctx))
		if err == nil {
			err = fmt.Errorf("projections: %d of %d candidate locks granted", n, len(l.keys))
		}
		return err
	}
	l.conn, l.pid = conn, int64(conn.PgConn().PID())
	return nil
}

// start runs the runners of the projections of key, whose lease this
// process now holds.
func (l *leases) start(ctx context.Context, key int32) {
	w := l.c.watcher
	for _, name := range l.c.reg.order {
		e := l.c.reg.entries[name]
		if e.key != key {
			continue
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a := &active{e: e, stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
		l.held[key] = append(l.held[key], a)
		l.c.progress[e.name].setLocal(true)
		l.c.cfg.Metrics.leader(e.name, true)
		w.acquire()
		go func() {
			defer close(a.done)
			defer w.release()
			if err := l.c.newRunner(e, w).run(rctx, a.stop, runForever); err != nil {
				l.c.cfg.Logger.ErrorContext(rctx, "projections: runner ended", "projection", e.name, "error", err)
			}
		}()
	}
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

// stopKey stops the runners of a lease this process holds.
func (l *leases) stopKey(ctx context.Context, key int32) {
	for _, a := range l.held[key] {
		stopRunner(ctx, a)
		l.c.progress[a.e.name].setLocal(false)
		l.c.cfg.Metrics.leader(a.e.name, false)
	}
	delete(l.held, key)
}

// drop stops a lease's runners and releases it.
func (l *leases) drop(ctx context.Context, key int32) error {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	l.stopKey(sctx, key)
	cancel()
	var ok bool
	return l.conn.QueryRow(ctx, unlockSQL, leaseClass, key).Scan(&ok)
}

// dropAll stops every runner and closes the lease connection, which ends
// the session and releases every lease and candidacy at once.
func (l *leases) dropAll(ctx context.Context) {
	for key := range l.held {
		l.stopKey(ctx, key)
	}
	if l.conn != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = l.conn.Close(cctx)
		cancel()
		l.conn = nil
	}
}

func (l *leases) close(ctx context.Context) { l.dropAll(ctx) }
