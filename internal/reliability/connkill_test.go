package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// Points in a dispatch where the injector kills the connection's backend
// (pg_terminate_backend from another session), as a crash of the database
// side or a network cut would. A dispatch sends BEGIN with its locks and
// reads in one batch, its insert in a second, and COMMIT with the insert
// or, when hooks run in between (the outbox does), in a batch of its own.
const (
	atBegin       = "before the first round trip (BEGIN, locks, reads)"
	atLockAndRead = "during the first round trip"
	atAppend      = "at the append"
	atCommit      = "before commit"
	inCommit      = "while commit is in flight"
	afterCommit   = "after commit"
)

var killPoints = []string{atBegin, atLockAndRead, atAppend, atCommit, inCommit, afterCommit}

// killer is a pgx tracer that terminates the backend of a dispatch's
// connection at the kill points: the first few times each point is
// reached, so that every point is covered, and at random after that.
type killer struct {
	admin *pgxpool.Pool
	p     float64 // chance per kill point reached, after the first ones
	kills sync.Map
	count atomic.Int64
}

const killsFirst = 3 // every point is hit at least this often

// killedPools returns two pools on a new database with the ticket
// example's schema: clean, and faulty, whose connections a killer
// terminates at its kill points (with chance p past the first ones).
func killedPools(t *testing.T, p float64, maxConns int32) (clean, faulty *pgxpool.Pool, k *killer) {
	t.Helper()
	ctx := context.Background()
	url := testdb.NewURL(t)
	clean = testdb.Pool(t, url)
	if err := tickets.Migrate(ctx, clean); err != nil {
		t.Fatal(err)
	}
	k = &killer{admin: clean, p: p}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.Tracer = k
	faulty, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(faulty.Close)
	return clean, faulty, k
}

func (k *killer) maybeKill(ctx context.Context, conn *pgx.Conn, point string) {
	k.maybeKillPID(ctx, conn.PgConn().PID(), point)
}

func (k *killer) maybeKillPID(ctx context.Context, pid uint32, point string) {
	n, _ := k.kills.LoadOrStore(point, new(atomic.Int64))
	if n.(*atomic.Int64).Load() >= killsFirst && rand.Float64() >= k.p {
		return
	}
	if _, err := k.admin.Exec(context.WithoutCancel(ctx), "SELECT pg_terminate_backend($1)", pid); err == nil {
		k.count.Add(1)
		n.(*atomic.Int64).Add(1)
	}
}

// later kills pid a moment from now, racing what the connection is doing.
func (k *killer) later(ctx context.Context, pid uint32, point string) {
	go func() {
		time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
		k.maybeKillPID(ctx, pid, point)
	}()
}

func (k *killer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (k *killer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// batchKind tells what a batch of a dispatch carries.
type batchKind struct{ begin, insert, commit bool }

type batchKindKey struct{}

func (k *killer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	var bk batchKind
	for i, q := range data.Batch.QueuedQueries {
		sql := strings.ToLower(strings.TrimSpace(q.SQL))
		bk.begin = bk.begin || (i == 0 && strings.HasPrefix(sql, "begin"))
		bk.insert = bk.insert || strings.Contains(sql, "insert into factos_events")
		bk.commit = bk.commit || sql == "commit"
	}
	pid := conn.PgConn().PID()
	switch {
	case bk.begin && rand.IntN(2) == 0:
		k.maybeKill(ctx, conn, atBegin)
	case bk.begin:
		k.later(ctx, pid, atLockAndRead)
	case bk.insert && (!bk.commit || rand.IntN(3) == 0):
		k.later(ctx, pid, atAppend)
	case bk.commit && rand.IntN(2) == 0:
		k.maybeKill(ctx, conn, atCommit)
	case bk.commit:
		// Race the COMMIT: sometimes the server commits and the reply is
		// lost, the one case whose outcome the client cannot know.
		k.later(ctx, pid, inCommit)
	}
	return context.WithValue(ctx, batchKindKey{}, bk)
}

func (k *killer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if bk, _ := ctx.Value(batchKindKey{}).(batchKind); bk.commit && data.Err == nil {
		k.maybeKill(ctx, conn, afterCommit)
	}
}

func (k *killer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// Concurrent buyers dispatch through connections that die at every point
// of the dispatch; each retries with its command id until it gets an
// answer. Afterwards: every accepted command stored exactly once, no
// rejected command stored anything, no oversell, every sale reacted to and
// announced exactly once, and a catch-up reader saw every event once.
func TestDispatchConnectionsKilledAtEveryPoint(t *testing.T) {
	t.Parallel()
	for _, strategy := range eventstore.LockStrategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clean, faulty, k := killedPools(t, 0.06, 24)

			// River works on the clean pool; the dispatches, and the
			// outbox inserts inside them, run on the faulty one.
			codec := tickets.NewCodec()
			reg := reactors.NewRegistry(nil)
			if err := tickets.RegisterReactions(reg, codec, clean); err != nil {
				t.Fatal(err)
			}
			env := testriver.Start(t, clean, reg, &testriver.Opts{StoreConfig: &eventstore.Config{LockStrategy: strategy}})
			ob, err := reg.Outbox(nil)
			if err != nil {
				t.Fatal(err)
			}
			store, err := eventstore.New(faulty, &eventstore.Config{LockStrategy: strategy, BatchHooks: []eventstore.BatchHook{ob}, MaxAttempts: 50})
			if err != nil {
				t.Fatal(err)
			}

			concert, capacity := "c1", scale(60, 400)
			buyers := capacity * 3 / 2
			if _, err := eventstore.Dispatch(ctx, env.Store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: concert, Capacity: capacity}, nil); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			reader := catchUp(ctx, env.Store, stop)

			l := newLedger()
			buy := tickets.BuyTicketHandler(codec)
			sem := make(chan struct{}, 16)
			var wg sync.WaitGroup
			for i := range buyers {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					cmd := tickets.BuyTicket{ConcertID: concert, BuyerID: fmt.Sprint(i)}
					l.dispatchUntilDefinite(ctx, fmt.Sprintf("%s/buy/%d", concert, i), func(ctx context.Context, id string) error {
						_, err := eventstore.Dispatch(ctx, store, buy, cmd, &eventstore.DispatchOpts{CommandID: id})
						return err
					})
				})
			}
			wg.Wait()
			close(stop)

			sold := checkSale(t, ctx, clean, l, concert, capacity, nil)
			if sold != capacity {
				t.Errorf("%d sold of %d with %d buyers", sold, capacity, buyers)
			}
			testriver.WaitFor(t, 2*time.Minute, "every reaction and effect", func() (bool, error) {
				var pending int
				err := clean.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&pending)
				return pending == 0, err
			})
			checkReactions(t, ctx, clean, concert, sold)
			checkCatchUp(t, ctx, clean, <-reader)
			if s := faulty.Stat(); s.AcquiredConns() != 0 {
				t.Errorf("%d connections still acquired", s.AcquiredConns())
			}
			var report []string
			for _, p := range killPoints {
				n, ok := k.kills.Load(p)
				if !ok || n.(*atomic.Int64).Load() < killsFirst {
					t.Errorf("no kill injected %s: the test did not exercise it", p)
					continue
				}
				report = append(report, fmt.Sprintf("%s: %d", p, n.(*atomic.Int64).Load()))
			}
			summary, _ := json.Marshal(map[string]any{"strategy": strategy, "commands": buyers, "accepted": len(l.accepted),
				"rejected": len(l.rejected), "client_retries": l.retries, "kills": k.count.Load(), "by_point": report})
			t.Logf("faults: %s", summary)
		})
	}
}
